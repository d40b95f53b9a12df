#!/usr/bin/env python3
"""Prints the first of COUNT consecutive ports free for TCP and UDP on 127.0.0.1.

Usage: scripts/free-ports.py COUNT   (exits 1 when 200 random tries find none)

The ports lie below the kernel's ephemeral range (source ports of outgoing connections), so
a connection made meanwhile (curl, Prometheus scrapes) cannot take one before the node
binds it.
"""
import random
import socket
import sys


def free(port):
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def ephemeral_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            start = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        start = 32768
    return start if start >= 25000 else 32768


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for _ in range(200):
        base = random.randrange(20000, ephemeral_start() - count)
        if all(free(p) for p in range(base, base + count)):
            print(base)
            return 0
    print(f"no {count} consecutive free ports on 127.0.0.1", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
