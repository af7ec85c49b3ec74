package main

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is what the binary knows about itself: the module version
// ("(devel)" for go build in a checkout, vX.Y.Z for go install ...@vX.Y.Z),
// and the VCS revision and time that go build stamps from the checkout.
type buildInfo struct {
	version, revision, time, goVersion string
	modified                           bool
}

func readBuildInfo() buildInfo {
	b := buildInfo{version: "(devel)", revision: "unknown", goVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.version = cmp.Or(bi.Main.Version, b.version)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.time":
			b.time = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

// version is what --version prints after "gtsm ".
func version() string {
	b := readBuildInfo()
	s := fmt.Sprintf("%s (revision %s", b.version, b.revision)
	if b.modified {
		s += ", modified"
	}
	if b.time != "" {
		s += ", " + b.time
	}
	return s + ", " + b.goVersion + ")"
}

// buildInfoGauge is gtsm_build_info{version,revision,goversion} 1, the
// Prometheus convention for telling which build a scraped process runs.
func buildInfoGauge() prometheus.Collector {
	b := readBuildInfo()
	rev := b.revision
	if b.modified {
		rev += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gtsm_build_info",
		Help:        "Always 1; the labels say which build of gtsm runs.",
		ConstLabels: prometheus.Labels{"version": b.version, "revision": rev, "goversion": b.goVersion},
	})
	g.Set(1)
	return g
}
