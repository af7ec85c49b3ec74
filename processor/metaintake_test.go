package processor

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
)

// publishRawMeta writes value to the gtsm_metadata topic under site's key,
// on the partition `gtsm metadata load` would use, without the loader's
// validation: what an attacker (or a buggy producer) can put there.
func publishRawMeta(t *testing.T, st *stack, site string, value []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key := []byte(site)
	r := &kgo.Record{Topic: "gtsm_metadata", Key: key, Value: value, Partition: partition.For(key, 3)}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// framedMeta is s encoded as the loader encodes it (without its checks).
func framedMeta(t *testing.T, s *metadata.Station) []byte {
	t.Helper()
	c, err := metadata.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0, 0, 0, 0, 1}, b...)
}

// TestLevel2MetadataAttacks: station metadata records the loader would
// refuse, put on the gtsm_metadata topic while the processor runs (a NaN
// gap, a gap of 0, a NaN matrix entry, 8,000 matrices in 840 KB, garbage),
// and one left as the topic's latest value across a restart: every one is
// a dead letter naming the field, and every Level-2 row, before, between
// and after them, is computed with the valid version published first (equal
// to the oracle run with that version throughout: no NaN or zero
// microstrain, three regional rows per time).
func TestLevel2MetadataAttacks(t *testing.T) {
	testutil.Long(t)
	stations := l2Stations(t)
	a := stations["TSM5"]
	recs := l2SiteData("TSM5", a.Reference, 6, 11)
	var hours [6][]record.Record
	for _, r := range recs {
		h := int((r.Time/1000 - l2Start) / 3600)
		hours[min(max(h, 0), 5)] = append(hours[min(max(h, 0), 5)], r)
	}
	nanGap, zeroGap, nanMatrix, many := *a, *a, *a, *a
	nanGap.Gap = math.NaN()
	zeroGap.Gap = 0
	nanMatrix.Matrices = append([]metadata.Matrix(nil), a.Matrices...)
	nanMatrix.Matrices[0].Values[1][2] = math.NaN()
	many.Matrices = nil
	for i := range 8000 {
		m := a.Matrices[0]
		m.Name = fmt.Sprintf("M%04d", i)
		many.Matrices = append(many.Matrices, m)
	}
	attacks := []struct {
		name  string
		value []byte
		why   string // in the dead letter's error
	}{
		{"NaN gap", framedMeta(t, &nanGap), "gap (m) NaN"},
		{"gap 0", framedMeta(t, &zeroGap), "gap (m) 0"},
		{"NaN matrix", framedMeta(t, &nanMatrix), "calibration matrix lab row 2 CH2: NaN"},
		{"8000 matrices", framedMeta(t, &many), "exceeds 65536 bytes"},
		{"garbage", []byte("\x00\x00\x00\x00\x01not avro at all"), "decode"},
	}
	if n := len(attacks[3].value); n < 800_000 {
		t.Fatalf("the 8,000-matrix record is %d bytes", n)
	}

	st := startStack(t, 3)
	va := publishMeta(t, st, a)["TSM5"]
	st.publish(t, append(hours[0], hours[1]...))
	path := filepath.Join(t.TempDir(), "attacks.duckdb")
	run := startProc(t, l2Config(st, path, "attacks"))
	waitL2(t, run)
	// One attack per hour of data while it runs; the last one stays the
	// topic's value across a restart.
	for i, at := range attacks[:3] {
		publishRawMeta(t, st, "TSM5", at.value)
		time.Sleep(2 * time.Second) // the lookup table follows within its fetch wait
		st.publish(t, hours[2+i])
		waitL2(t, run)
	}
	publishRawMeta(t, st, "TSM5", attacks[3].value)
	time.Sleep(2 * time.Second)
	run.stop(t)
	publishRawMeta(t, st, "TSM5", attacks[4].value)
	st.publish(t, hours[5])
	run = startProc(t, l2Config(st, path, "attacks"))
	waitL2(t, run)
	run.stop(t)

	db := openRO(t, path)
	defer db.Close()
	wantG, wantR := l2Oracle(t, recs, map[string]l2Meta2{"TSM5": {a, va}}, nil, nil)
	testutil.DiffLines(t, "level2_gauge_data (vs oracle with the valid version throughout)", l2Lines(t, db, qL2Gauge), wantG)
	testutil.DiffLines(t, "level2_regional_data (vs oracle with the valid version throughout)", l2Lines(t, db, qL2Reg), wantR)
	testutil.DiffLines(t, "station_metadata", l2Lines(t, db, qL2Meta), []string{"TSM5|" + va})

	// The dead letters: one per refused value met (the 8,000-matrix one
	// was replaced before any sample met it), each naming its reason.
	dead := queryLines(t, db, `SELECT topic, error FROM dead_letters`)
	want := []int{0, 1, 2, 4}
	if len(dead) != len(want) {
		t.Fatalf("dead_letters: %d rows, want %d:\n%s", len(dead), len(want), strings.Join(dead, "\n"))
	}
	for _, w := range want {
		found := false
		for _, d := range dead {
			found = found || strings.HasPrefix(d, "gtsm_metadata|") && strings.Contains(d, attacks[w].why) && strings.Contains(d, "keeping version "+va)
		}
		if !found {
			t.Errorf("no dead letter for %s saying %q and the version kept:\n%s", attacks[w].name, attacks[w].why, strings.Join(dead, "\n"))
		}
	}
	// The dead-letter topic has them too, with their reason.
	dl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.ConsumeTopics(testTopic+".dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < len(want) && ctx.Err() == nil {
		dl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	if len(got) != len(want) {
		t.Fatalf("%d dead letters in %s.dlq, want %d", len(got), testTopic, len(want))
	}
	for _, r := range got {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[HeaderDLQReason] != metaReason || h[HeaderDLQTopic] != "gtsm_metadata" || string(r.Key) != "TSM5" || !strings.HasPrefix(h[HeaderDLQSeenAt], testTopic+"/") {
			t.Errorf("dead letter headers %v key %q", h, r.Key)
		}
	}
}

// TestValidateMatchesLoader: what the processor refuses is what the loader
// refuses (one function), and what the loader builds from the real station
// files passes.
func TestValidateMatchesLoader(t *testing.T) {
	for site, s := range l2Stations(t) {
		if err := metadata.Validate(s); err != nil {
			t.Errorf("%s from the station files: %v", site, err)
		}
		c, err := metadata.NewCodec()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.DecodeValid(framedMeta(t, s)); err != nil {
			t.Errorf("%s as published: %v", site, err)
		}
	}
}
