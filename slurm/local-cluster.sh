#!/usr/bin/env bash
# A real single-node Slurm cluster for tests: munged + MariaDB + slurmdbd + slurmctld + slurmd,
# every file (config, keys, state, spool, pids, logs, database) under one state directory.
#
#   slurm/local-cluster.sh up     [STATE_DIR]   start (fresh) and wait for an idle node;
#                                               the LAST stdout line is `export SLURM_CONF=...`
#   slurm/local-cluster.sh down   [--purge] [STATE_DIR]
#                                               stop everything started from STATE_DIR
#   slurm/local-cluster.sh status [STATE_DIR]   daemons alive + sinfo (exit 0 iff all alive)
#
#   eval "$(slurm/local-cluster.sh up | tail -1)"; sbatch --wrap hostname; ...
#
# STATE_DIR defaults to ${MATRIXHPC_SLURM_DIR:-/tmp/matrixhpc-slurm}. Ports (all on 127.0.0.1):
# MATRIXHPC_SLURM_PORT_BASE (default 26810, below the ephemeral range) -> slurmctld=BASE,
# slurmd=BASE+1, slurmdbd=BASE+2, mariadb=BASE+3; or set MATRIXHPC_SLURMCTLD_PORT,
# MATRIXHPC_SLURMD_PORT, MATRIXHPC_SLURMDBD_PORT, MATRIXHPC_MARIADB_PORT one by one.
# MATRIXHPC_SLURM_GPUS=N (default 0) declares N stand-in GPUs
# (no devices: jobs asking for GPUs get scheduled, nothing more); with 0 there is no GRES at all
# and jobs need none.
# MATRIXHPC_SLURM_CRED_EXPIRE (default 10 s; Slurm's default 120) bounds how long a requeued job
# waits before it may start again.
#
# Packages: slurm/install-packages.sh. Needs root (munged runs as `munge`, mariadbd as `mysql`).
# Nothing system-wide is touched: no /etc/slurm, /etc/munge, systemd or init scripts.
# A fresh `up` wipes the state dir (and so the database: job ids start at 1 again, in both).
# `down` stops the daemons by their pid files, then anything else from this state dir (see
# marked_pids: slurmstepd, job processes, slurmscriptd); it never signals unrelated processes.
set -euo pipefail
export LC_ALL=C

PATH="$PATH:/usr/sbin:/sbin"
CLUSTER=matrixhpc
MARKER_FILE=.matrixhpc-slurm-state
DAEMONS_UP=(munged mariadbd slurmdbd slurmctld slurmd)  # start order; down is the reverse
STOP_TIMEOUT=${MATRIXHPC_SLURM_STOP_TIMEOUT:-15}
START_TIMEOUT=${MATRIXHPC_SLURM_START_TIMEOUT:-60}

log() { printf '[local-cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# paths

set_paths() {
    S=$1
    ETC=$S/etc
    CONF=$ETC/slurm.conf
    DBD_CONF=$ETC/slurmdbd.conf
    RUN=$S/run
    LOGS=$S/log
    MUNGE_DIR=$S/munge
    MUNGE_SOCK=$MUNGE_DIR/munge.socket.2
    MYSQL_DIR=$S/mysql
    MYSQL_DATA=$MYSQL_DIR/data
    MYSQL_SOCK=$MYSQL_DIR/mysqld.sock
}

pidfile_of() {
    case $1 in
        munged) echo "$MUNGE_DIR/munged.pid" ;;
        mariadbd) echo "$MYSQL_DIR/mariadbd.pid" ;;
        slurmdbd | slurmctld | slurmd) echo "$RUN/$1.pid" ;;
        *) return 1 ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# processes

# pid of a daemon if its pid file names a live process with the right name, else nothing
daemon_pid() {
    local name=$1 file pid comm
    file=$(pidfile_of "$name")
    [ -s "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    # mariadbd may show up as mysqld on older packages
    case "$name:$comm" in
        "$name:$name" | mariadbd:mysqld) ;;
        *) return 1 ;;
    esac
    # a zombie is as good as dead
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
    echo "$pid"
}

alive() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# ancestors of this script (never signal them: the caller may have SLURM_CONF set, or run in a job)
own_lineage() {
    local p=$$
    while [ -n "$p" ] && [ "$p" -gt 1 ] 2>/dev/null; do
        echo "$p"
        p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null || true)
    done
}

# does process $1 use the state dir (cwd, an open file, or its command line)?
uses_state() {
    local t f
    t=$(readlink "/proc/$1/cwd" 2>/dev/null) && [[ $t == "$S" || $t == "$S"/* ]] && return 0
    for f in "/proc/$1"/fd/*; do
        t=$(readlink "$f" 2>/dev/null) || continue
        [[ $t == "$S"/* ]] && return 0
    done
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$S/"
}

# every process started from this state dir, found three ways:
# - daemons, slurmscriptd and slurmstepd: by name, with their cwd, an open file or their
#   command line under the state dir (slurmstepd overwrites its environment with its title)
# - anything carrying MATRIXHPC_SLURM_STATE=<state dir> in its environment
# - job processes: SLURM_CONF=<our slurm.conf> and SLURM_JOB_ID in their environment (sbatch
#   exports the submitter's environment)
# plus all their descendants. Never this script or its ancestors.
marked_pids() {
    local d pid ppid line comm changed=1
    local -A seed=() skip=()
    local -a table
    for pid in $(own_lineage); do skip[$pid]=1; done
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ -z "${skip[$pid]:-}" ] || continue
        read -r comm <"$d/comm" 2>/dev/null || continue
        case $comm in
            slurmstepd | slurmd | slurmctld | slurmscriptd | slurmdbd | munged | mariadbd | mysqld)
                uses_state "$pid" && seed[$pid]=1 ;;
        esac
    done
    while read -r line; do
        line=${line#/proc/}
        pid=${line%/environ}
        [ -n "$pid" ] && [ -z "${skip[$pid]:-}" ] && seed[$pid]=1
    done < <(
        grep -lzxF "MATRIXHPC_SLURM_STATE=$S" /proc/[0-9]*/environ 2>/dev/null || true
        { grep -lzxF "SLURM_CONF=$CONF" /proc/[0-9]*/environ 2>/dev/null || true; } |
            { xargs -r grep -lz '^SLURM_JOB_ID=' 2>/dev/null || true; }
    )
    [ ${#seed[@]} -gt 0 ] || return 0
    # add descendants (a job's children may have a scrubbed environment)
    mapfile -t table < <(ps -e -o pid=,ppid=)
    while [ $changed = 1 ]; do
        changed=0
        for line in "${table[@]}"; do
            read -r pid ppid <<<"$line"
            if [ -n "${seed[$ppid]:-}" ] && [ -z "${seed[$pid]:-}" ] && [ -z "${skip[$pid]:-}" ]; then
                seed[$pid]=1
                changed=1
            fi
        done
    done
    for pid in "${!seed[@]}"; do alive "$pid" && echo "$pid"; done
    return 0
}

# SIGTERM, wait up to $2 seconds, then SIGKILL
terminate() {
    local timeout=$2 pid deadline
    local -a pids
    read -r -a pids <<<"$1"
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while [ $SECONDS -lt $deadline ]; do
        local left=()
        for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
        [ ${#left[@]} -gt 0 ] || return 0
        pids=("${left[@]}")
        sleep 0.2
    done
    log "still alive after ${timeout}s, SIGKILL: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.2
}

# ---------------------------------------------------------------------------------------------
# waiting

wait_for() {  # wait_for SECONDS DESCRIPTION LOGFILE COMMAND...
    local timeout=$1 what=$2 logfile=$3
    shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            log "timed out after ${timeout}s waiting for $what"
            if [ -n "$logfile" ] && [ -f "$logfile" ]; then
                log "last lines of $logfile:"
                tail -n 30 "$logfile" >&2 || true
            fi
            return 1
        fi
        sleep 0.1
    done
}

port_in_use() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

munge_ok() { munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK"; }
mysql_ok() { mariadb-admin --no-defaults -S "$MYSQL_SOCK" -u root ping; }
dbd_ok() { SLURM_CONF=$CONF sacctmgr -n list cluster; }
ctld_ok() { SLURM_CONF=$CONF scontrol ping | grep -q 'is UP'; }
node_idle() { [ "$(SLURM_CONF=$CONF sinfo -h -n node1 -o %t 2>/dev/null)" = idle ]; }

all_alive() {
    local d
    for d in "${DAEMONS_UP[@]}"; do daemon_pid "$d" >/dev/null || return 1; done
}

any_alive() {
    local d
    for d in "${DAEMONS_UP[@]}"; do daemon_pid "$d" >/dev/null && return 0; done
    [ -n "$(marked_pids)" ]
}

# ---------------------------------------------------------------------------------------------
# configuration

write_configs() {
    local host ctld_port slurmd_port dbd_port mysql_port gpus dbpass cred_expire
    host=$(hostname -s)
    # a requeued job may start again only cred_expire+1 seconds later (Slurm's default: 120)
    cred_expire=${MATRIXHPC_SLURM_CRED_EXPIRE:-10}
    ctld_port=$1 slurmd_port=$2 dbd_port=$3 mysql_port=$4 gpus=$5 dbpass=$6

    local gres_conf="" node_gres="" tres=""
    if [ "$gpus" -gt 0 ]; then
        gres_conf="GresTypes=gpu"
        node_gres=" Gres=gpu:$gpus"
        tres="AccountingStorageTRES=gres/gpu"
        # Slurm drops file-less GPUs: give each a stand-in file (never opened; task/none)
        mkdir -p "$S/dev"
        local i
        for ((i = 0; i < gpus; i++)); do : >"$S/dev/gpu$i"; done
        echo "Name=gpu File=$S/dev/gpu[0-$((gpus - 1))]" >"$ETC/gres.conf"
    fi

    cat >"$CONF" <<EOF
# generated by slurm/local-cluster.sh; state dir $S
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK,cred_expire=$cred_expire
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$ETC/plugstack.conf
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
PropagateResourceLimits=NONE
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2,bf_interval=2
PriorityType=priority/basic
PreemptType=preempt/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
AccountingStoragePass=$MUNGE_SOCK
$tres
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
$gres_conf
JobRequeue=1
KillWait=2
MinJobAge=10
WaitTime=0
InactiveLimit=0
OverTimeLimit=0
ReturnToService=2
SlurmctldTimeout=120
SlurmdTimeout=300
UnkillableStepTimeout=30
SlurmdParameters=config_overrides
NodeName=node1 NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000$node_gres State=UNKNOWN
PartitionName=debug Nodes=node1 Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$ETC/plugstack.conf"

    (
        umask 077
        cat >"$DBD_CONF" <<EOF
# generated by slurm/local-cluster.sh; state dir $S
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
DebugLevel=info
LogFile=$LOGS/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$mysql_port
StorageUser=slurm
StoragePass=$dbpass
StorageLoc=slurm_acct_db
EOF
    )
    chmod 600 "$DBD_CONF"
}

# ---------------------------------------------------------------------------------------------
# commands

print_export() { echo "export SLURM_CONF=$CONF"; }

cmd_up() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (munged runs as munge, mariadbd as mysql)"
    local b
    for b in munged munge unmunge mariadbd mariadb mariadb-install-db mariadb-admin slurmdbd \
        slurmctld slurmd sacctmgr scontrol sinfo runuser; do
        command -v "$b" >/dev/null 2>&1 || die "$b not found: run slurm/install-packages.sh first"
    done

    if [ -f "$S/$MARKER_FILE" ] && all_alive && ctld_ok && node_idle_or_busy; then
        log "already up ($S)"
        print_export
        return 0
    fi

    local t0=$SECONDS
    # a fresh start: stop whatever is left from this state dir and wipe it (state + database)
    if [ -e "$S" ]; then
        if [ -f "$S/$MARKER_FILE" ]; then
            if any_alive; then
                log "partially running: stopping it first"
                cmd_down
            fi
            rm -rf "$S"
        elif [ -n "$(ls -A "$S" 2>/dev/null)" ]; then
            die "$S exists, is not empty and is not a local-cluster state dir; refusing to wipe it"
        fi
    fi
    # unix socket paths are limited to 107 bytes
    [ ${#S} -le 70 ] || die "state dir path too long for unix sockets (${#S} > 70 chars): $S"

    local base=${MATRIXHPC_SLURM_PORT_BASE:-26810}
    local ctld_port=${MATRIXHPC_SLURMCTLD_PORT:-$base}
    local slurmd_port=${MATRIXHPC_SLURMD_PORT:-$((base + 1))}
    local dbd_port=${MATRIXHPC_SLURMDBD_PORT:-$((base + 2))}
    local mysql_port=${MATRIXHPC_MARIADB_PORT:-$((base + 3))}
    local gpus=${MATRIXHPC_SLURM_GPUS:-0}
    local p
    for p in "$ctld_port" "$slurmd_port" "$dbd_port" "$mysql_port"; do
        ! port_in_use "$p" || die "port $p on 127.0.0.1 is in use (set MATRIXHPC_SLURM_PORT_BASE)"
    done

    mkdir -p "$S"
    chmod 755 "$S"
    touch "$S/$MARKER_FILE"
    mkdir -p "$ETC" "$RUN" "$LOGS" "$S/ctld" "$S/spool/slurmd" "$MUNGE_DIR" "$MYSQL_DIR"
    chmod 755 "$ETC" "$RUN" "$LOGS"
    chmod 700 "$S/ctld" "$S/spool"
    if ! runuser -u munge -- test -x "$S" || ! runuser -u mysql -- test -x "$S"; then
        rm -rf "$S"
        die "users munge/mysql cannot enter $S (a parent directory is not world-searchable)"
    fi

    local dbpass
    dbpass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    write_configs "$ctld_port" "$slurmd_port" "$dbd_port" "$mysql_port" "$gpus" "$dbpass"
    export SLURM_CONF=$CONF
    export MATRIXHPC_SLURM_STATE=$S

    # if anything below fails, leave nothing running
    UP_DONE=0
    trap 'if [ "$UP_DONE" = 0 ]; then log "up failed; stopping what was started (logs in $LOGS, $MUNGE_DIR, $MYSQL_DIR)"; cmd_down >/dev/null 2>&1 || true; fi' EXIT

    # -- munged: own key, socket, pid, log; runs as munge
    chown munge: "$MUNGE_DIR"
    chmod 755 "$MUNGE_DIR"
    if ! mungekey -c -k "$MUNGE_DIR/munge.key" >/dev/null 2>&1; then
        dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1 count=1024 status=none
    fi
    chown munge: "$MUNGE_DIR/munge.key"
    chmod 400 "$MUNGE_DIR/munge.key"
    log "starting munged"
    runuser -u munge -- env MATRIXHPC_SLURM_STATE="$S" munged \
        --socket="$MUNGE_SOCK" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" </dev/null >>"$LOGS/munged.out" 2>&1
    wait_for "$START_TIMEOUT" munged "$MUNGE_DIR/munged.log" munge_ok

    # -- MariaDB: private datadir, socket, port on 127.0.0.1; runs as mysql
    chown mysql: "$MYSQL_DIR"
    chmod 755 "$MYSQL_DIR"
    log "initialising MariaDB"
    mariadb-install-db --no-defaults --user=mysql --datadir="$MYSQL_DATA" \
        --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
        >"$LOGS/mariadb-install-db.log" 2>&1 ||
        { tail -n 30 "$LOGS/mariadb-install-db.log" >&2; false; }
    log "starting mariadbd"
    setsid env MATRIXHPC_SLURM_STATE="$S" mariadbd --no-defaults --user=mysql \
        --datadir="$MYSQL_DATA" --socket="$MYSQL_SOCK" --pid-file="$MYSQL_DIR/mariadbd.pid" \
        --port="$mysql_port" --bind-address=127.0.0.1 --skip-name-resolve \
        --log-error="$MYSQL_DIR/mariadbd.log" --innodb-buffer-pool-size=64M \
        --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=0 \
        --innodb-doublewrite=0 --innodb-lock-wait-timeout=900 --performance-schema=OFF \
        --skip-log-bin --max-connections=100 </dev/null >>"$LOGS/mariadbd.out" 2>&1 &
    wait_for "$START_TIMEOUT" mariadbd "$MYSQL_DIR/mariadbd.log" mysql_ok
    mariadb --no-defaults -S "$MYSQL_SOCK" -u root <<EOF
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$dbpass';
CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$dbpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF

    # -- slurmdbd, then the cluster and associations in the database
    log "starting slurmdbd"
    slurmdbd </dev/null >>"$LOGS/slurmdbd.out" 2>&1
    wait_for "$START_TIMEOUT" slurmdbd "$LOGS/slurmdbd.log" dbd_ok
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -i add account "$CLUSTER" Description=local Organization=local >/dev/null
    sacctmgr -i add user root Account="$CLUSTER" >/dev/null
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        sacctmgr -i add user "$SUDO_USER" Account="$CLUSTER" DefaultAccount="$CLUSTER" >/dev/null
    fi

    # -- slurmctld, slurmd
    log "starting slurmctld"
    slurmctld -f "$CONF" </dev/null >>"$LOGS/slurmctld.out" 2>&1
    wait_for "$START_TIMEOUT" slurmctld "$LOGS/slurmctld.log" ctld_ok
    log "starting slurmd"
    slurmd -f "$CONF" -N node1 </dev/null >>"$LOGS/slurmd.out" 2>&1
    wait_for "$START_TIMEOUT" "node1 idle" "$LOGS/slurmd.log" node_idle
    UP_DONE=1
    trap - EXIT

    log "up in $((SECONDS - t0))s: $S (slurmctld :$ctld_port, slurmd :$slurmd_port," \
        "slurmdbd :$dbd_port, mariadb :$mysql_port)"
    print_export
}

node_idle_or_busy() {
    local st
    st=$(SLURM_CONF=$CONF sinfo -h -n node1 -o %t 2>/dev/null) || return 1
    case $st in idle | mix | alloc | comp*) return 0 ;; *) return 1 ;; esac
}

cmd_down() {
    local d pid pids
    if [ ! -d "$S" ]; then
        log "nothing to stop: $S does not exist"
        return 0
    fi
    [ -f "$S/$MARKER_FILE" ] || die "$S is not a local-cluster state dir"
    export SLURM_CONF=$CONF
    # cancel jobs first, so slurmstepd kills its job processes itself
    if pid=$(daemon_pid slurmctld) && [ -n "$pid" ]; then
        local jobs
        jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || true
        if [ -n "${jobs// /}" ]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs >/dev/null 2>&1 || true
            local deadline=$((SECONDS + 10))
            while [ $SECONDS -lt $deadline ] &&
                [ -n "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ]; do
                sleep 0.3
            done
        fi
    fi
    for d in slurmd slurmctld slurmdbd mariadbd munged; do
        if pid=$(daemon_pid "$d"); then
            log "stopping $d (pid $pid)"
            terminate "$pid" "$STOP_TIMEOUT"
        fi
    done
    # leftovers: slurmstepd, job processes, slurmscriptd, anything else carrying the marker
    pids=$(marked_pids | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
        log "stopping leftover processes: $pids"
        terminate "$pids" 5
    fi
    pids=$(marked_pids | tr '\n' ' ')
    [ -z "${pids// /}" ] || die "processes still alive: $pids"
    rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$MYSQL_SOCK"
    log "down ($S)"
}

cmd_status() {
    local d pid rc=0
    if [ ! -f "$S/$MARKER_FILE" ]; then
        echo "no cluster state in $S"
        return 3
    fi
    for d in "${DAEMONS_UP[@]}"; do
        if pid=$(daemon_pid "$d"); then
            printf '%-10s running (pid %s)\n' "$d" "$pid"
        else
            printf '%-10s stopped\n' "$d"
            rc=3
        fi
    done
    echo "SLURM_CONF=$CONF"
    if daemon_pid slurmctld >/dev/null; then
        SLURM_CONF=$CONF timeout 10 sinfo || rc=3
        SLURM_CONF=$CONF timeout 10 squeue || true
    fi
    return $rc
}

# ---------------------------------------------------------------------------------------------

[ $# -ge 1 ] || usage
action=$1
shift
purge=0
if [ "$action" = down ] && [ "${1:-}" = --purge ]; then
    purge=1
    shift
fi
[ $# -le 1 ] || usage
state=${1:-${MATRIXHPC_SLURM_DIR:-/tmp/matrixhpc-slurm}}
case $state in /*) ;; *) state=$PWD/$state ;; esac
state=${state%/}
[ -n "$state" ] && [ "$state" != / ] || die "refusing state dir /"
set_paths "$state"

case $action in
    up) cmd_up ;;
    down)
        cmd_down
        if [ $purge = 1 ] && [ -f "$S/$MARKER_FILE" ]; then
            rm -rf "$S"
            log "removed $S"
        fi
        ;;
    status) cmd_status ;;
    *) usage ;;
esac
