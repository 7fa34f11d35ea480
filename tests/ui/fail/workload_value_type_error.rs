struct NotDisplay;

e2e::workload! {
    A(user: NotDisplay = NotDisplay) {
        image: "a",
        user: user,
        command: [vec![1]],
    }
}

fn main() {}
