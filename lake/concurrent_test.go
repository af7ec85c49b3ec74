package lake

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestConcurrentPublishers: four owners (each its own DuckDB file and
// partition, its own Publisher and catalog connection, as separate
// processes would have) commit and publish ten rounds each at the same
// time into the same ten Iceberg tables, with late data rewriting
// published days. Commits conflict and are retried; at the end every
// table, through the query service and through the independent reader,
// equals the union of the owners' files, with no offset twice; every
// owner's offset is in the tables' properties.
func TestConcurrentPublishers(t *testing.T) {
	testutil.Long(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "lake")
	const owners, rounds = 4, 10
	ows := make([]*fakeOwner, owners)
	for i := range ows {
		ows[i] = newFakeOwner(t)
	}
	var wg sync.WaitGroup
	errs := make(chan error, owners)
	for i := range ows {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			pub, err := New(dir, Logger(quietLogger()))
			if err != nil {
				errs <- err
				return
			}
			defer pub.Close()
			part := int32(i)
			for r := 0; r < rounds; r++ {
				for s := 0; s < 2; s++ {
					site := fmt.Sprintf("C%d%d", i, s)
					// New rows on day2, late rows on day1 (already published).
					ows[i].commitNoFatal(site, part, 4, day2+int64(100*r), day1+int64(50+r))
				}
				if err := pub.Publish(ctx, ows[i].db, part); err != nil {
					errs <- fmt.Errorf("owner %d round %d: %w", i, r, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	dbs := make([]*sql.DB, owners)
	for i := range ows {
		dbs[i] = ows[i].db
	}
	checkIndependent(t, dir, dbs, "concurrent owners")
	q, err := OpenQuery(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var n, distinct int
	if err := q.DB().QueryRow(`SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM gtsm_etl`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != owners*rounds*2*4 || distinct != n {
		t.Errorf("query service: %d gtsm_etl rows, %d distinct offsets; want %d", n, distinct, owners*rounds*2*4)
	}
	m := readMeta(t, dir, "gtsm_etl")
	for i := 0; i < owners; i++ {
		if got := m.Properties[offsetKey(testTopic, int32(i))]; got != fmt.Sprint(rounds*2*4) {
			t.Errorf("gtsm_etl offset property of partition %d: %q, want %d", i, got, rounds*2*4)
		}
	}
	t.Logf("gtsm_etl: %d snapshots in the metadata for %d publishes", len(m.Snapshots), owners*rounds)
}
