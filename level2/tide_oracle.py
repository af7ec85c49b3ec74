"""An independent implementation of Agnew's admittance method for the body
tide (the method SPOTL's hartid implements), for TestTideOracle. Written from
the method's description (Agnew, SPOTL documentation; Cartwright & Tayler
1971; IERS Conventions 2003 eq. 5.43), vectorized with numpy and scipy's
splines; it shares only the harmonic table (cte342.txt, data) with the Go
code.

usage: tide_oracle.py DIR
DIR/params.json: {"start": unix seconds, "n": points, "period": seconds,
"longitude": east degrees, "constituents": [[channel, name, doodson, amp,
phase], ...]} (doodson as "1-1 0 0 0 0", amp nanostrain, phase local degrees).
Writes DIR/tide.csv: time and each channel's tide in microstrain.
"""
import json
import os
import sys

import numpy as np
from scipy.interpolate import CubicSpline

d = sys.argv[1]
p = json.load(open(os.path.join(d, "params.json")))

# The harmonic table: Doodson argument numbers and CTE amplitudes.
rows = [l.split() for l in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cte342.txt"))
        if l.strip() and not l.startswith("#")]
N = np.array([[int(x) for x in r[:6]] for r in rows])  # (342, 6)
CTE = np.array([float(r[6]) for r in rows])

# Time: UT day fraction and Julian centuries of terrestrial time from J2000.
# TT - UTC is 32.184 s + the leap seconds of SPOTL's table, which ends with
# the one at the start of 2009 (66.184 s since then); the test's times are all
# after 2009.
unix = p["start"] + p["period"] * np.arange(p["n"], dtype=np.int64)
dayfrac = (unix % 86400) / 86400.0
jd_ut = 2440587.5 + unix / 86400.0
T = (jd_ut - 2451545.0 + 66.184 / 86400.0) / 36525.0

# Delaunay arguments (degrees): l, l', F, D, Omega; IERS 2003 polynomials.
DEL = np.array([
    [134.9634025100, 477198.8675605000, 0.0088553333, 0.0000143431, -0.0000000680],
    [357.5291091806, 35999.0502911389, -0.0001536667, 0.0000000378, -0.0000000032],
    [93.2720906200, 483202.0174577222, -0.0035420000, -0.0000002881, 0.0000000012],
    [297.8501954694, 445267.1114469445, -0.0017696111, 0.0000018314, -0.0000000088],
    [125.0445550100, -1934.1362619722, 0.0020756111, 0.0000021394, -0.0000000165],
])
l, lp, F, D, Om = (np.polynomial.polynomial.polyval(T, c) for c in DEL)
# Doodson variables: tau (mean lunar time) = UT angle - D, s = F + Omega (Moon's
# mean longitude), h = s - D (Sun's), p = s - l (lunar perigee), N' = -Omega,
# ps = h - l' (solar perigee).
s_ = F + Om
h_ = s_ - D
dood = np.stack([360.0 * dayfrac - D, s_, h_, s_ - l, -Om, h_ - lp], axis=1)  # (n, 6)
dood = np.mod(dood, 360.0)

# Frequencies (cycles/day) of the Doodson variables: the derivatives of the
# same polynomials at J2000 (degrees per Julian century -> cycles per day).
rate = DEL[:, 1] / 360.0 / 36525.0
rl, rlp, rF, rD, rOm = rate
rs = rF + rOm
rh = rs - rD
drate = np.array([1.0 - rD, rs, rh, rs - rl, -rOm, rh - rlp])
freq = N @ drate  # (342,)


def parse_doodson(s):
    s = " " + s
    return [int(s[2 * k:2 * k + 2]) for k in range(6)]


def interpolator(f, y):
    """Admittance interpolation along frequency within one band: straight
    lines through up to 3 points, else a cubic spline with the end slopes of
    the parabolas through the 3 end points; the end value beyond the ends."""
    o = np.argsort(f)
    f, y = np.asarray(f)[o], np.asarray(y)[o]
    if len(f) <= 3:
        return lambda x: np.interp(x, f, y)

    def parabola_slope(x0, x1, x2, y0, y1, y2):
        return np.polyval(np.polyder(np.polyfit([x0, x1, x2], [y0, y1, y2], 2)), x0)

    s0 = parabola_slope(f[0], f[1], f[2], y[0], y[1], y[2])
    s1 = parabola_slope(f[-1], f[-2], f[-3], y[-1], y[-2], y[-3])
    cs = CubicSpline(f, y, bc_type=((1, s0), (1, s1)))
    return lambda x: cs(np.clip(x, f[0], f[-1]))


out = {"time": unix}
chans = sorted({c[0] for c in p["constituents"]})
lon = p["longitude"]
for ch in chans:
    # complex admittance at each given constituent, per band
    bands = {}
    for c in p["constituents"]:
        if c[0] != ch:
            continue
        n = parse_doodson(c[2])
        k = np.flatnonzero((N == n).all(axis=1))[0]
        sp = n[0]
        y = float(c[3]) / abs(CTE[k]) * np.exp(1j * np.radians(float(c[4]) + sp * lon))
        bands.setdefault(sp, []).append((freq[k], y))
    # An empty diurnal or semidiurnal band: hartid's spline evaluation with
    # no nodes in the band returns the constant admittance of the given
    # constituent nearest in frequency (all given ones lie in other bands).
    # An empty long-period band is not evaluated at all.
    given = sorted((q for pts in bands.values() for q in pts), key=lambda q: q[0])
    for sp in (1, 2):
        if sp not in bands and given:
            centre = {1: 1.0, 2: 2.0}[sp]
            near = min(given, key=lambda q: abs(q[0] - centre))
            bands[sp] = [(near[0], near[1])]
    tide = np.zeros(len(unix))
    for sp, pts in bands.items():
        fk = [q[0] for q in pts]
        re = interpolator(fk, [q[1].real for q in pts])
        im = interpolator(fk, [q[1].imag for q in pts])
        sel = N[:, 0] == sp
        Y = re(freq[sel]) + 1j * im(freq[sel])
        # harmonic j: CTE_j * Re(Y_j exp(i(V_j + offset))), offset 90 deg for
        # the diurnal species, 180 for the long-period one (the sign
        # conventions of the CTE table's normalized potential)
        off = {0: 180.0, 1: 90.0, 2: 0.0}[sp]
        V = np.radians(dood @ N[sel].T + off)  # (n, harmonics)
        tide += (np.cos(V) * (CTE[sel] * Y.real) - np.sin(V) * (CTE[sel] * Y.imag)).sum(axis=1)
    out[ch] = tide * 1e-3

with open(os.path.join(d, "tide.csv"), "w") as f:
    f.write(",".join(["time"] + chans) + "\n")
    for i in range(len(unix)):
        f.write(",".join([str(int(unix[i]))] + ["%.15g" % out[ch][i] for ch in chans]) + "\n")
