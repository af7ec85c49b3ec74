"""Runs EarthScope's gtsm_metadata.py readers on local files and prints what
they read as JSON (used by TestPythonCrossCheck).

gtsm_metadata.py fetches its two files over HTTP (pandas.read_csv(url) and
urllib.request.urlopen(url)); here urlopen is pointed at the local README and
get_meta_table at the local table, so its own parsing code runs unchanged on
the same text the Go parser reads. Its package-level imports of
earthscopestraintools.datasources_api_interact and requests are only used for
an FDSN network lookup and are stubbed.

usage: gtsm_metadata_check.py GTSM_METADATA_PY TABLE README_DIR STATION...
"""
import importlib.util
import io
import json
import math
import os
import sys
import types

src, table, readme_dir = sys.argv[1:4]
stations = sys.argv[4:]

stub = types.ModuleType("earthscopestraintools")
api = types.ModuleType("earthscopestraintools.datasources_api_interact")
api.lookup_fdsn_network_from_bnum = lambda *a: None
sys.modules["earthscopestraintools"] = stub
sys.modules["earthscopestraintools.datasources_api_interact"] = api
if "requests" not in sys.modules:
    try:
        import requests  # noqa: F401
    except ImportError:
        req = types.ModuleType("requests")
        req.exceptions = types.SimpleNamespace(ConnectionError=ConnectionError)
        sys.modules["requests"] = req

spec = importlib.util.spec_from_file_location("gtsm_metadata", src)
gm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gm)
import pandas as pd


class _Resp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def urlopen(url):
    name = url.rsplit("/", 1)[-1]
    path = os.path.join(readme_dir, name)
    if not os.path.exists(path):
        raise OSError("no local file for " + url)
    with open(path, "rb") as f:
        return _Resp(f.read())


gm.request.urlopen = urlopen
gm.GtsmMetadata.get_meta_table = lambda self: pd.read_csv(table, sep=r"\s+", index_col="BNUM")


def num(x):
    if x is None:
        return None
    return float(x)


out = {}
for sta in stations:
    m = gm.GtsmMetadata("XX", sta)
    mats = {}
    for k, v in m.strain_matrices.items():
        mats[k] = None if v is None else [[float(x) for x in row] for row in v]
    tides = None
    if m.tidal_params is not None:
        tides = {"%s %s %s" % k: v for k, v in m.tidal_params.items()}
    trend = m.detrend_params
    out[sta] = {
        "latitude": m.latitude,
        "longitude": m.longitude,
        "elevation": m.elevation,
        "gap": m.gap,
        "orientation": m.orientation,
        "start_date": m.start_date,
        "reference": {k: (v if isinstance(v, str) else int(v)) for k, v in m.reference_strains.items()},
        "matrices": mats,
        "computed_lab": [[float(x) for x in row] for row in m.make_weighted_strain_matrix()],
        "atmp": m.atmp_response,
        "tides": tides,
        "trend": trend,
    }
print(json.dumps(out))
