package faults

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

// TestConcurrentProducersCreateTopic (issue 14, "gtsm produce from several
// machines"): several `gtsm produce` processes started at once on a topic
// that does not exist yet race to create it. The losers get
// TopicAlreadyExists and must then use the winner's topic; they used to look
// it up again through the client's cached "unknown topic" answer and fail
// with "does not exist and --no-create is set" (seen in 1 of 6 topics of a
// backfill run). Each case starts k producers on fresh topics, several times
// over; every producer must exit 0 and the topic must hold every record once.
func TestConcurrentProducersCreateTopic(t *testing.T) {
	b := newBackfillBroker(t)
	serde := b.backfillSerde(t)
	sites := balancedSites(t, serde, 1)[:6]
	files := t.TempDir()
	var perSite int64
	for i, s := range sites {
		perSite = writeNoisySite(t, filepath.Join(files, s), s, uint64(i+1), 1)
	}
	for _, tc := range []struct{ producers, topics int }{{2, 4}, {3, 4}, {6, 2}} {
		t.Run(strconv.Itoa(tc.producers)+" producers", func(t *testing.T) {
			for i := range tc.topics {
				name := fmt.Sprintf("new_%d_%d", tc.producers, i)
				b.produceParallel(t, name, files, sites, tc.producers)
				if got, want := b.messages(t, name), perSite*int64(len(sites)); got != want {
					t.Fatalf("topic %s holds %d messages, want %d", name, got, want)
				}
			}
		})
	}
}
