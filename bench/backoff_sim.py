#!/usr/bin/env python3
"""What the Vault client's retry schedule does against a rate-limit quota, simulated (see
vault/README.md, "Cost per pod start"; bench/herd.sh measures the real thing).

N pods each make K Vault requests one after the other (login, sign[, revoke]); Vault admits
them through a token bucket of RATE per second (capacity RATE, as a 1 s rate-limit quota) and
answers 429 otherwise; a refused request is retried after uniform(0, min(cap, base * 2^n))
(src/retry.rs, full jitter; base 250 ms, cap 10 s in src/vault/client.rs). Prints, per cap, the
time until the last pod is done, the median pod, and the 429s, averaged over 5 seeds.

    python3 bench/backoff_sim.py
"""
import heapq
import random


def sim(n: int, k: int, rate: float, base: float, cap: float, seed: int, rtt: float = 0.01):
    rnd = random.Random(seed)
    tokens, last, rejected, done = rate, 0.0, 0, []
    events = [(rnd.uniform(0, 0.05), i, 0, 0) for i in range(n)]  # time, pod, request, attempt
    heapq.heapify(events)
    while events:
        t, i, r, a = heapq.heappop(events)
        tokens = min(rate, tokens + (t - last) * rate)
        last = t
        if tokens >= 1:
            tokens -= 1
            if r + 1 == k:
                done.append(t + rtt)
            else:
                heapq.heappush(events, (t + rtt, i, r + 1, 0))
        else:
            rejected += 1
            heapq.heappush(events, (t + rnd.uniform(0, min(cap, base * 2 ** a)), i, r, a + 1))
    done.sort()
    return done[-1], done[len(done) // 2], rejected


def main() -> None:
    for n, k in ((200, 3), (200, 2), (500, 3), (500, 2), (1000, 2)):
        for cap in (10, 5, 2, 1):
            runs = [sim(n, k, 100, 0.25, cap, seed) for seed in range(5)]
            last, med, rej = (sum(r[j] for r in runs) / len(runs) for j in range(3))
            print(f"N={n} requests/pod={k} cap={cap:>2} s: all done {last:5.1f} s, "
                  f"median pod {med:5.1f} s, 429s {rej:6.0f} (quota floor {n * k / 100:.0f} s)")


if __name__ == "__main__":
    main()
