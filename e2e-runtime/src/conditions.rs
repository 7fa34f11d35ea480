//! Network conditions of a runnable (issue 14): added delay with jitter, loss and a rate limit
//! on what it sends, to everyone or on the link to one peer, changed and cleared at run time.
//!
//! Like partitions, they are nftables rules on the runnable's interface (a netdev table
//! `e2e_net` of its own, rewritten whole at each change), put in place by the helper
//! container of [`crate::partition`]: the user's image needs nothing. Loss drops each packet
//! with the given probability (the kernel's `numgen random`); the rate limit drops what goes
//! over the rate (a policer: TCP slows down to it, datagrams over it are lost). Added delay
//! holds packets in a helper of its own ([`crate::delay`]): it needs no `netem`, which not every
//! engine's kernel has (this project's CI kernel has none).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use crate::delay::{Delay, Plan};
use crate::error::{Error, Result};
use crate::runnable::Runnable;

/// Conditions on what a runnable sends: [`Runnable::set_network`], [`Runnable::set_link`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Conditions {
    loss: Option<f64>,
    rate: Option<u64>,
    delay: Option<Duration>,
    jitter: Option<Duration>,
}

impl Conditions {
    /// No condition: everything passes.
    pub fn new() -> Self {
        Conditions::default()
    }

    /// Drops each packet sent with probability `fraction` (0.1 loses one in ten).
    pub fn loss(mut self, fraction: f64) -> Self {
        self.loss = Some(fraction);
        self
    }

    /// Lets at most `bytes_per_second` through; what goes over is dropped.
    pub fn rate(mut self, bytes_per_second: u64) -> Self {
        self.rate = Some(bytes_per_second);
        self
    }

    /// Holds each packet sent for `delay` before it goes.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Spreads the delay uniformly over `delay ± jitter` (never below zero), packet by packet:
    /// packets may arrive out of order, as under netem. Needs a [`Conditions::delay`].
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// Its delay, if it adds one.
    fn held(&self) -> Option<Delay> {
        let delay = self.delay.unwrap_or_default();
        let jitter = self.jitter.unwrap_or_default();
        (delay > Duration::ZERO || jitter > Duration::ZERO).then_some(Delay { delay, jitter })
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.jitter.is_some() && self.delay.is_none() {
            return Err("a jitter spreads a delay: set one with .delay(..)".into());
        }
        if let Some(l) = self.loss {
            if !(0.0..=1.0).contains(&l) {
                return Err(format!("loss {l} is not a fraction between 0 and 1"));
            }
        }
        if self.rate == Some(0) {
            return Err("a rate of 0 bytes per second lets nothing through: use e2e::partition".into());
        }
        Ok(())
    }

    /// The nftables rule statements, after a match (`ip daddr X ` or nothing).
    fn rules(&self, matching: &str) -> Vec<String> {
        let mut rules = Vec::new();
        if let Some(l) = self.loss.filter(|l| *l > 0.0) {
            let below = (l * 1_000_000.0).round() as u64;
            rules.push(format!("{matching}numgen random mod 1000000 < {below} drop"));
        }
        if let Some(r) = self.rate {
            // A tenth of a second's worth of burst, and at least two full frames.
            let burst = (r / 10).max(3000);
            rules.push(format!("{matching}limit rate over {r} bytes/second burst {burst} bytes drop"));
        }
        rules
    }
}

/// The conditions in place, by container: `None` for everything it sends, else by peer
/// address.
type InPlace = HashMap<String, BTreeMap<Option<String>, Conditions>>;

fn in_place() -> &'static Mutex<InPlace> {
    static IN_PLACE: std::sync::OnceLock<Mutex<InPlace>> = std::sync::OnceLock::new();
    IN_PLACE.get_or_init(Default::default)
}

/// The delays among these conditions.
fn plan(conditions: &BTreeMap<Option<String>, Conditions>) -> Plan {
    Plan {
        own: conditions.get(&None).and_then(Conditions::held),
        links: conditions.iter().filter_map(|(peer, c)| Some((peer.clone()?, c.held()?))).collect(),
    }
}

/// The whole table for these conditions (an empty one clears).
fn script(conditions: &BTreeMap<Option<String>, Conditions>) -> String {
    let mut s = String::from("add table netdev e2e_net ; delete table netdev e2e_net");
    let mut rules = Vec::new();
    // The links' first: a packet to a shaped peer meets its link's conditions, then the
    // runnable's own.
    for (peer, c) in conditions.iter().rev() {
        // IP only: the neighbours' address resolution (ARP) is left alone, as netem does.
        let matching = match peer {
            Some(ip) => format!("ip daddr {ip} "),
            None => "meta protocol ip ".to_string(),
        };
        rules.extend(c.rules(&matching));
    }
    if !rules.is_empty() {
        // On the interface's egress: the sender sees no error, its packets just go missing
        // (the loopback, where the engine's DNS server is, is untouched).
        let device = crate::partition::DEVICE;
        s.push_str(&format!(
            " ; add table netdev e2e_net ; add chain netdev e2e_net out {{ type filter hook egress device {device} priority -5 ; }}"
        ));
        for r in rules {
            s.push_str(&format!(" ; add rule netdev e2e_net out {r}"));
        }
    }
    s
}

impl Runnable {
    /// Sets the conditions on everything this runnable sends, replacing those set before
    /// (links keep theirs). `Conditions::new()` clears them.
    ///
    /// ```no_run
    /// # async fn f(r: &e2e_runtime::Runnable) -> e2e_runtime::Result<()> {
    /// use std::time::Duration;
    /// use e2e_runtime::Conditions;
    /// r.set_network(Conditions::new().loss(0.2).rate(125_000)).await?; // 20% lost, 1 Mbit/s
    /// r.set_network(Conditions::new().delay(Duration::from_millis(100)).jitter(Duration::from_millis(10))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_network(&self, conditions: Conditions) -> Result<()> {
        self.change_conditions(None, conditions, "set network conditions").await
    }

    /// Sets the conditions on what this runnable sends to `to` (one way; set them on `to` too
    /// for both), replacing those set before on that link.
    pub async fn set_link(&self, to: &Runnable, conditions: Conditions) -> Result<()> {
        let (_, ip) = to.on_network("be a link's end")?;
        self.change_conditions(Some(ip), conditions, "set link conditions").await
    }

    /// Clears every condition of this runnable, its links' included.
    pub async fn clear_network(&self) -> Result<()> {
        let fault = |reason: String| Error::NetworkFault {
            operation: "clear network conditions".into(),
            runnable: self.name().to_string(),
            reason,
        };
        let (id, _) = self.on_network("clear network conditions")?;
        let env = self.env_of();
        crate::partition::ensure_image(&*env.inner.engine).await.map_err(fault)?;
        crate::partition::nft(&*env.inner.engine, env, &id, &script(&BTreeMap::new())).await.map_err(fault)?;
        crate::delay::apply(env, &id, &Plan::default()).await.map_err(fault)?;
        in_place().lock().unwrap().remove(&id);
        Ok(())
    }

    async fn change_conditions(&self, peer: Option<String>, conditions: Conditions, operation: &str) -> Result<()> {
        let fault = |reason: String| Error::NetworkFault {
            operation: operation.to_string(),
            runnable: self.name().to_string(),
            reason,
        };
        conditions.check().map_err(fault)?;
        let (id, _) = self.on_network("have network conditions")?;
        let mut next = in_place().lock().unwrap().get(&id).cloned().unwrap_or_default();
        if conditions == Conditions::new() {
            next.remove(&peer);
        } else {
            next.insert(peer, conditions);
        }
        let env = self.env_of();
        crate::partition::ensure_image(&*env.inner.engine).await.map_err(fault)?;
        crate::partition::nft(&*env.inner.engine, env, &id, &script(&next)).await.map_err(fault)?;
        crate::delay::apply(env, &id, &plan(&next)).await.map_err(fault)?;
        in_place().lock().unwrap().insert(id, next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_render_as_one_table_links_first() {
        let mut c = BTreeMap::new();
        assert_eq!(script(&c), "add table netdev e2e_net ; delete table netdev e2e_net");
        c.insert(None, Conditions::new().loss(0.25));
        c.insert(Some("10.0.0.3".to_string()), Conditions::new().rate(125_000));
        let s = script(&c);
        let link = s.find("ip daddr 10.0.0.3 limit rate over 125000 bytes/second burst 12500 bytes drop").unwrap();
        let all = s.find("out meta protocol ip numgen random mod 1000000 < 250000 drop").unwrap();
        assert!(link < all, "{s}");
    }

    #[test]
    fn bad_conditions_say_what_is_wrong() {
        assert!(Conditions::new().loss(1.5).check().unwrap_err().contains("1.5"));
        assert!(Conditions::new().rate(0).check().unwrap_err().contains("partition"));
        assert!(Conditions::new().loss(0.0).rate(1).check().is_ok());
        let jitter = Conditions::new().jitter(Duration::from_millis(5)).check().unwrap_err();
        assert!(jitter.contains("delay"), "{jitter}");
    }

    #[test]
    fn delays_are_the_runnables_and_its_links() {
        let ms = Duration::from_millis;
        let mut c = BTreeMap::new();
        c.insert(None, Conditions::new().loss(0.1));
        c.insert(Some("10.0.0.3".to_string()), Conditions::new().delay(ms(5)));
        assert_eq!(
            plan(&c),
            Plan { own: None, links: vec![("10.0.0.3".into(), Delay { delay: ms(5), jitter: ms(0) })] }
        );
        c.insert(None, Conditions::new().delay(ms(100)).jitter(ms(10)));
        assert_eq!(plan(&c).own, Some(Delay { delay: ms(100), jitter: ms(10) }));
        assert!(script(&c).ends_with("delete table netdev e2e_net"), "a delay alone is no nft rule");
    }
}
