"""Welch's t-test and Benjamini-Hochberg's false discovery rate, for fleet comparisons: each
profile one observation, as `vignette diff` compares two folders (src/tools/significance.rs)."""

import math


def _betacf(a, b, x):
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided(t, df):
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def t_critical(df, p=0.05):
    """The t with two-sided tail probability `p` (by bisection)."""
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided(mid, df) > p else (lo, mid)
    return (lo + hi) / 2


def welch(n0, sum0, squares0, n1, sum1, squares1):
    """Means of each side, the 95% interval of the change, and the two-sided p-value, from
    each side's count, sum and sum of squares."""
    m0, m1 = sum0 / n0, sum1 / n1
    v0 = max(squares0 - n0 * m0 * m0, 0.0) / (n0 - 1)
    v1 = max(squares1 - n1 * m1 * m1, 0.0) / (n1 - 1)
    a, b = v0 / n0, v1 / n1
    se = math.sqrt(a + b)
    change = m1 - m0
    if se == 0.0:
        return m0, m1, (change, change), 1.0 if change == 0.0 else 0.0
    df = (a + b) ** 2 / (a * a / (n0 - 1) + b * b / (n1 - 1)) if a * b > 0 else n0 + n1 - 2
    half = t_critical(df) * se
    return m0, m1, (change - half, change + half), t_two_sided(change / se, df)


def benjamini_hochberg(ps):
    """q-values of the p-values `ps`, in their order."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    qs, smallest = [0.0] * len(ps), 1.0
    for rank in range(len(ps), 0, -1):
        i = order[rank - 1]
        smallest = min(smallest, ps[i] * len(ps) / rank)
        qs[i] = smallest
    return qs
