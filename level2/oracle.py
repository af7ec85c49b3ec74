"""The Level-2 oracle: runs EarthScope's processing.py functions on the input
the Go test generated and writes what they return (used by TestOracle).

usage: oracle.py PROCESSING_PY DIR
DIR holds strain.csv (time,ch0..ch3: 1 s counts on a full 1 s grid; empty =
absent second, 999999 = fill value), pressure.csv (time,counts), params.json
(reference, gap, matrices, atmp response, offset window/multiplier/percentile,
tide_csv: the tide correction on the 300 s grid from tide_oracle.py;
optional trend_csv: the trend correction on that grid, else the streaming
linear fit below).
Writes gauge.csv (300 s: counts, microstrain, regional, tide, trend, offsets),
atmp.csv and interp.csv (the seconds interpolate() touched).
"""
import importlib.util
import json
import sys

import numpy as np
import pandas as pd

src, d = sys.argv[1:3]
spec = importlib.util.spec_from_file_location("processing", src)
proc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(proc)

params = json.load(open(d + "/params.json"))
chans = ["CH0", "CH1", "CH2", "CH3"]

raw = pd.read_csv(d + "/strain.csv")
raw.index = pd.to_datetime(raw["time"], unit="s")
raw.index.name = "time"
raw = raw[["ch0", "ch1", "ch2", "ch3"]].astype("float64")
raw.columns = chans

# decimate_1s_to_300s interpolates (interpolate(), limit 3600) itself.
counts = proc.decimate_1s_to_300s(raw)
interp = proc.interpolate(raw)  # also checked: the 1 s interpolation
ref = dict(zip(chans, params["reference"]))
micro = proc.linearize(counts, ref, params["gap"])
out = pd.DataFrame(index=counts.index)
for c in chans:
    out["counts_" + c] = counts[c]
    out["micro_" + c] = micro[c]
for name, m in params["matrices"]:
    reg = proc.apply_calibration_matrix(micro, np.array(m), name)
    for j, col in enumerate(reg.columns):
        out["reg_%s_%d" % (name, j)] = reg[col]

# Tide correction: tide_oracle.py's (an independent implementation checked
# against SPOTL hartid) on the 300 s grid.
tide = pd.read_csv(params["tide_csv"])
tide.index = pd.to_datetime(tide["time"], unit="s")
tide = tide[chans].reindex(micro.index)

micro.index.name = "time"
if "trend_csv" in params:
    # Given (processor tests, whose stations may have a README trend model):
    # the trend on the 300 s grid, so the offsets below are found on the
    # same detided, detrended series.
    trend = pd.read_csv(params["trend_csv"])
    trend.index = pd.to_datetime(trend["time"], unit="s")
    trend = trend[chans].reindex(micro.index)
else:
    # Trend correction, streaming form: at each valid row i, the last row of
    # calculate_linear_trend_correction (level2.ipynb's linear fit) run on the
    # series from its first row to row i.
    micro.index.name = "time"
    valid = micro.notna().all(axis=1).values
    trend = pd.DataFrame(np.nan, index=micro.index, columns=chans)
    first = np.flatnonzero(valid)[0]
    for i in np.flatnonzero(valid):
        if i == first:
            trend.iloc[i] = 0.0  # one row: row number 0 times any slope
            continue
        tr = proc.calculate_linear_trend_correction(micro.iloc[first:i + 1])
        trend.iloc[i] = tr.iloc[-1].values
for c in chans:
    out["tide_" + c] = tide[c]
    out["trend_" + c] = trend[c]

# Offsets, streaming form, on microstrain - tide_c - trend_c (level2.ipynb
# cell 17): the limit for row i is calculate_offsets' on the window of the
# last W+1 rows ending at i, of the linearly interpolated 300 s series
# (calculate_offsets' own first step, applied to the whole series).
W = params["offset_window"]
full = (micro - tide - trend).interpolate(method="linear", limit=3600, limit_direction="both")
cum = np.zeros(4)
cums = []
for i in range(len(full)):
    win = full.iloc[max(0, i - W): i + 1]
    c = proc.calculate_offsets(win, limit_multiplier=params["offset_multiplier"], cutoff_percentile=params["offset_percentile"])
    if len(c) >= 2:
        step = (c.iloc[-1] - c.iloc[-2]).values
    else:
        step = np.zeros(4)
    # A flagged difference enters the window's cumsum whole; an unflagged one not at all.
    d_i = (full.iloc[i] - full.iloc[i - 1]).values if i > 0 else np.zeros(4)
    for g in range(4):
        if step[g] != 0:
            cum[g] += d_i[g]
    cums.append(cum.copy())
cums = np.array(cums)
for g, c in enumerate(chans):
    out["off_" + c] = cums[:, g]
out.insert(0, "time", (out.index.astype("int64") // 10**9))
out.to_csv(d + "/gauge.csv", index=False, float_format="%.17g")

# Only the seconds interpolate() had to touch (a gauge NaN or 999999 in the
# input): every other second must come through unchanged, which the Go side
# checks against its own input.
touched = raw.replace(999999, np.nan).isna().any(axis=1)
ic = interp[touched].copy()
ic.insert(0, "time", ic.index.astype("int64") // 10**9)
ic.to_csv(d + "/interp.csv", index=False, float_format="%.17g")

p = pd.read_csv(d + "/pressure.csv")
p = p[p["counts"] != 999999]
pt = p["time"].values.astype("float64")
hpa = p["counts"].values * 0.001
first = int(np.ceil(pt[0] / 300.0) * 300)
# Up to and including the last sample's time (the stream gives the newest
# sample's own 300 s time at once).
grid = np.arange(first, int(pt[-1]) + 1, 300)
# Leave out grid times whose bracketing samples are more than max_gap apart;
# a sample's own time is its value, always kept.
j = np.searchsorted(pt, grid, side="right")
ok = ((pt[np.minimum(j, len(pt) - 1)] - pt[j - 1]) <= params["max_pressure_gap"]) | (pt[j - 1] == grid)
grid = grid[ok]
atmp = pd.DataFrame({"atmp": np.interp(grid.astype("float64"), pt, hpa)}, index=pd.to_datetime(grid, unit="s"))
corr = proc.calculate_pressure_correction(atmp["atmp"], dict(zip(chans, params["atmp"])))
corr.insert(0, "hpa", atmp["atmp"])
corr.insert(0, "time", grid)
corr.to_csv(d + "/atmp.csv", index=False, float_format="%.17g")
