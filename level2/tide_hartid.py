"""Runs processing.calculate_tide_correction itself (which shells out to
SPOTL's hartid, found on PATH) for TestTideAgainstHartid.

usage: tide_hartid.py PROCESSING_PY DIR
DIR/params.json: {"start": unix seconds, "n": points, "period": seconds,
"longitude": east degrees, "constituents": [[channel, name, doodson, amp, phase],
...]} with amp and phase as the README's strings. Writes DIR/tide.csv: time and
the correction of each channel in microstrain, as calculate_tide_correction
returns it.
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

p = json.load(open(d + "/params.json"))
idx = pd.date_range(pd.Timestamp(p["start"], unit="s"), periods=p["n"], freq=f"{p['period']}s")
chans = sorted({c[0] for c in p["constituents"]})
df = pd.DataFrame({ch: np.zeros(len(idx)) for ch in chans}, index=idx)
# the dict get_tidal_params builds: (channel, name, "doodson"|"amp"|"phz") -> string
tp = {}
for ch, name, dood, amp, phz in p["constituents"]:
    tp[(ch, name, "doodson")] = dood
    tp[(ch, name, "amp")] = amp
    tp[(ch, name, "phz")] = phz
out = proc.calculate_tide_correction(df, p["period"], tp, p["longitude"])
out.insert(0, "time", (out.index.astype("int64") // 10**9).astype("int64"))
out.to_csv(d + "/tide.csv", index=False, float_format="%.10g")
