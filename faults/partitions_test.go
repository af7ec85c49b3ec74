package faults

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
)

// TestPartitionCountChange (docs/scale-out.md, "A partition count change"):
// partition-owned state assumes a site stays in its partition. Adding
// partitions to gtsm_etl breaks that: here 12 sites, one per partition of a
// 12-partition topic, are produced by the real `gtsm produce`; the topic then
// grows to 24 partitions and the sites' next minutes are produced again.
// Every site whose murmur2 key hash modulo 24 differs now lands in partition
// p+12 (never anywhere else: x mod 24 is x mod 12 or that + 12), whose owner's
// file holds none of its state; the others stay. The test requires the exact
// per-partition counts this predicts and that some sites moved and some did not.
func TestPartitionCountChange(t *testing.T) {
	b := newBackfillBroker(t)
	serde := b.backfillSerde(t)
	sites := balancedSites(t, serde, 1)
	files := t.TempDir()
	before, after := filepath.Join(files, "before"), filepath.Join(files, "after")
	const minutes = 2
	for i, s := range sites {
		writeNoisyMinutes(t, filepath.Join(before, s), s, uint64(i+1), 0, minutes)
		writeNoisyMinutes(t, filepath.Join(after, s), s, uint64(i+1), minutes, minutes)
	}
	produceDirs := func(root string) {
		t.Helper()
		var args []string
		for _, s := range sites {
			args = append(args, filepath.Join(root, s))
		}
		if code, stderr := b.produce(t, append([]string{"-q"}, args...)...); code != 0 {
			t.Fatalf("gtsm produce: exit %d\n%s", code, stderr)
		}
	}
	produceDirs(before)
	adm := b.admin(t)
	ctx := context.Background()
	if _, err := adm.UpdatePartitions(ctx, 2*backfillPartitions, topic); err != nil {
		t.Fatal(err)
	}
	produceDirs(after)

	const perSite = minutes * 1200
	want := map[int32]int64{}
	moved := 0
	for _, s := range sites {
		key := serde.AppendKey(nil, s)
		p12, p24 := partition.For(key, backfillPartitions), partition.For(key, 2*backfillPartitions)
		if p24 != p12 && p24 != p12+backfillPartitions {
			t.Fatalf("site %s: partition %d of 12 became %d of 24", s, p12, p24)
		}
		want[p12] += perSite
		want[p24] += perSite
		if p24 != p12 {
			moved++
			t.Logf("site %s moved from partition %d to %d", s, p12, p24)
		}
	}
	if moved == 0 || moved == len(sites) {
		t.Fatalf("%d of %d sites moved: the test needs both kinds", moved, len(sites))
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			got[o.Partition] = o.Offset
		}
	})
	if len(got) != len(want) {
		t.Errorf("%d partitions hold records, want %d: %v, want %v", len(got), len(want), got, want)
	}
	for p, n := range want {
		if got[p] != n {
			t.Errorf("partition %d holds %d records, want %d", p, got[p], n)
		}
	}
	t.Logf("12 → 24 partitions: %d of %d sites moved to p+12", moved, len(sites))
}

// TestBusiestPartition (docs/scale-out.md, "Path to internet scale"): a
// partition is processed in order by one member, so a backfill takes at
// least as long as its busiest partition. With ~80 stations keyed by site,
// murmur2 spreads them unevenly: for the 80 codes B000..B079, framed as
// gtsm produce frames keys (magic 0, key schema id 1, Avro string), the
// table gives the partitions that hold a site and the most sites in one.
func TestBusiestPartition(t *testing.T) {
	for _, tc := range []struct {
		partitions int32
		used, most int
	}{
		{12, 12, 9}, {24, 24, 7}, {48, 42, 5}, {96, 60, 3},
	} {
		t.Run(strconv.Itoa(int(tc.partitions)), func(t *testing.T) {
			count := map[int32]int{}
			for i := range 80 {
				key := append([]byte{0, 0, 0, 0, 1}, record.AppendKeyAvro(nil, fmt.Sprintf("B%03d", i))...)
				count[partition.For(key, tc.partitions)]++
			}
			most := 0
			for _, n := range count {
				most = max(most, n)
			}
			if len(count) != tc.used || most != tc.most {
				t.Errorf("%d partitions: %d hold sites, the busiest %d; want %d and %d", tc.partitions, len(count), most, tc.used, tc.most)
			}
		})
	}
}
