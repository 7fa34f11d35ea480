#!/bin/bash
# Hunts Docker 20.10's phantom network endpoint with the docker CLI: LANES lanes, each making a
# network ROUNDS times, starting N busybox containers on it (START=par: all at once; seq: one
# after another), removing them (RM=par: all force-removed at once; seq: one after another;
# disc: disconnected from the network one at a time, then all force-removed at once; pipe:
# disconnected one at a time, each force-removed as soon as it is, beside the next), then
# removing the network. A network refused with nothing attached is a phantom; it stays until
# the engine restarts, so run it on an engine you can restart. HOGS=n adds n busy loops.
#
#   usage: HOGS=2 tests/engine_faults/phantom_cli.sh START RM LANES ROUNDS N
#   e.g.:  HOGS=2 tests/engine_faults/phantom_cli.sh seq par 4 10 24    (the README's rows)
# Writes /tmp/phantom-cli-START-RM-hHOGS.log; its last line counts the phantoms.
st=$1; rm=$2; workers=$3; rounds=$4; n=$5
tag=$st-$rm-h${HOGS:-0}; log=/tmp/phantom-cli-$tag.log; : > $log
work() {
  w=$1
  for r in $(seq 1 $rounds); do
    net=hunt-$tag-$$-$w-$r
    docker network create --label hunt.phantom=1 $net >/dev/null
    if [ $st = par ]; then for i in $(seq 1 $n); do docker run -d --label hunt.phantom=1 --label net=$net --network $net busybox:1.35 sleep 300 >/dev/null & done; wait
    else for i in $(seq 1 $n); do docker run -d --label hunt.phantom=1 --label net=$net --network $net busybox:1.35 sleep 300 >/dev/null; done; fi
    ids=$(docker ps -aq --filter label=net=$net)
    if [ $rm = pipe ]; then for id in $ids; do docker network disconnect -f $net $id; docker rm -f $id >/dev/null & done; wait
    elif [ $rm = disc ]; then for id in $ids; do docker network disconnect -f $net $id; done; for id in $ids; do docker rm -f $id >/dev/null & done; wait
    elif [ $rm = par ]; then for id in $ids; do docker rm -f $id >/dev/null & done; wait
    else for id in $ids; do docker rm -f $id >/dev/null; done; fi
    if ! err=$(docker network rm $net 2>&1 >/dev/null); then
      att=$(docker network inspect -f '{{len .Containers}}' $net)
      echo "$(date +%T) w$w r$r FAILED att=$att $err" >> $log
    fi
  done
}
hogs=(); for h in $(seq 1 ${HOGS:-0}); do (while :; do :; done) & hogs+=($!); done
start=$(date +%s)
workers_pids=(); for w in $(seq 1 $workers); do work $w & workers_pids+=($!); done
wait ${workers_pids[@]}
kill ${hogs[@]} 2>/dev/null
echo "done $(grep -c FAILED $log) failures of $((workers*rounds)) networks in $(( $(date +%s)-start )) s" >> $log
