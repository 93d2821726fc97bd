#!/usr/bin/env python3
"""Splits a `perf record -g` profile of a berty-node process into stages of the message path.

    perf script -i node.perf.data | scripts/perf-stages.py [--per-message US]

Each sample is put in the stage of the first frame, walking from the leaf toward the root,
that names one (a `memcpy` called by SQLite is SQL; the same `memcpy` called by prost is
encoding). A sample whose stack names no stage (release builds keep no frame pointers, so
many stacks stop after a frame or two) goes by its leaf: thread switches and wake-ups,
allocation, memory copies, the async runtime, or "other". With
`--per-message US` (the node's CPU per message, from the benchmark's `cpu` line) each share
is also given in µs per message.

The benchmarks record profiles with `BERTY_BENCH_PERF=DIR` (docs/benchmarks.md).
"""

import re
import sys
from collections import Counter

# (stage, pattern over one frame's symbol and object). Order matters only within one frame.
STAGES = [
    ("fsync", r"fdatasync|\bfsync|ext4_sync_file|jbd2|blkdev_issue_flush|file_write_and_wait"),
    ("crypto: signatures", r"ed25519|curve25519|EdwardsPoint|FieldElement|Scalar52|pippenger|straus|sha2::sha512|Sha512"),
    ("crypto: AEAD and KDF", r"chacha20|poly1305|ChaCha|Poly1305|hkdf|hmac|sha2::sha256|Sha256|x25519"),
    ("SQL (SQLite, sqlx)", r"sqlite3|sqlx_sqlite|sqlx_core|libsqlite|sqlx_postgres"),
    ("encoding (prost)", r"prost::|::encode_raw|::merge_field|::encoded_len"),
    ("gossip", r"gossipsub"),
    ("sync protocol", r"berty_node::replication|berty_node::p2p::sync|berty_node::mirror"),
    ("subscriptions", r"berty_node::api::subscriptions|RecentEvents"),
    ("gRPC (tonic, h2, hyper)", r"tonic::|\bh2::|hyper::|hyper_util|tower::"),
    ("libp2p transport (yamux, noise, tcp)", r"yamux|libp2p_noise|snow::|libp2p_tcp|libp2p_swarm|libp2p_core|multistream"),
    ("decoding and verification pool", r"rayon"),
    ("group store (building, batching, views)", r"berty_node::actors::group_store|berty_node::group::|berty_node::log::|berty_node::crypto"),
    ("account and API handlers", r"berty_node::actors::account|berty_node::api::"),
    ("actor hops (actix mailboxes)", r"actix::|actix_rt"),
    ("network I/O syscalls", r"tcp_sendmsg|tcp_recvmsg|sock_sendmsg|sock_recvmsg|__sys_sendto|__sys_recvfrom|do_writev|do_readv"),
]
# Where a sample goes when no frame of its stack names a stage (the stacks are often cut
# short: release builds keep no frame pointers), by its leaf.
GENERIC = [
    ("thread switches and wake-ups (kernel)", r"finish_task_switch|_raw_spin_unlock|futex|schedule|try_to_wake_up|irqentry_exit|do_syscall_64|entry_SYSCALL|^syscall |parking_lot|pthread_cond"),
    ("allocation (malloc, free, page faults)", r"malloc|_int_free|cfree|unlink_chunk|__rdl_alloc|__rdl_dealloc|clear_page|exc_page_fault|page_fault|realloc"),
    ("memcpy, memset, memcmp (caller unknown)", r"__mem(move|cpy|set|cmp)"),
    ("async runtime (tokio, futures)", r"tokio::|futures_|mio::|slab::"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in STAGES]
COMPILED_GENERIC = [(name, re.compile(pattern)) for name, pattern in GENERIC]
OTHER = "other (caller unknown)"


def stage_of(frames):
    for frame in frames:
        for name, pattern in COMPILED:
            if pattern.search(frame):
                return name
    for frame in frames[:1]:
        for name, pattern in COMPILED_GENERIC:
            if pattern.search(frame):
                return name
    return OTHER


def samples(lines):
    frames = []
    in_sample = False
    for line in lines:
        if not line.strip():
            if in_sample:
                yield frames
            frames, in_sample = [], False
            continue
        if line[0] in " \t":
            # "\t    55d1c0a1b2c3 symbol+0x12 (object)"
            parts = line.strip().split(" ", 1)
            frames.append(parts[1] if len(parts) > 1 else parts[0])
        else:
            in_sample = True
    if in_sample:
        yield frames


def main():
    per_message = None
    if "--per-message" in sys.argv:
        per_message = float(sys.argv[sys.argv.index("--per-message") + 1])
    counts = Counter(stage_of(frames) for frames in samples(sys.stdin))
    total = sum(counts.values())
    if total == 0:
        sys.exit("no samples on stdin (pipe `perf script -i FILE` in)")
    header = "| stage | share |" + (" µs/msg |" if per_message else "")
    print(header)
    print("|---|---|" + ("---|" if per_message else ""))
    for name, count in counts.most_common():
        share = count / total
        row = f"| {name} | {share * 100:.1f}% |"
        if per_message:
            row += f" {share * per_message:.0f} |"
        print(row)
    print(f"\n{total} samples")


if __name__ == "__main__":
    main()
