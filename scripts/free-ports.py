#!/usr/bin/env python3
"""Prints the first of COUNT consecutive ports free for TCP and UDP on 127.0.0.1.

Usage: scripts/free-ports.py COUNT   (exits 1 when 200 random tries find none)
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


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        if all(free(p) for p in range(base, base + count)):
            print(base)
            return 0
    print(f"no {count} consecutive free ports on 127.0.0.1", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
