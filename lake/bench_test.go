package lake

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkPublishIdle measures a Publish that finds nothing new, over a
// partition with rows windows of 80 sites: the checksum scan every round
// pays (docs/scale-out-query.md, "Limits"). The first, full publish is
// reported as first-publish-s.
//
//	go test -run X -bench PublishIdle -benchtime 5x ./lake
func BenchmarkPublishIdle(b *testing.B) {
	for _, days := range []int{7, 30} {
		b.Run(time.Duration(days*24*int(time.Hour)).String(), func(b *testing.B) {
			ctx := context.Background()
			o := newFakeOwner(b)
			o.commit("S00", 0, 1, day1)
			// 80 sites x days x (24 hourly + 1 daily) x 3 sessions x 4 channels.
			if _, err := o.db.Exec(`INSERT INTO windows
				SELECT 'S' || lpad(s::VARCHAR, 2, '0'), sess, w, ts, ts + INTERVAL 1 HOUR, 'ch' || c, 3600, 0, 1, 2, 1.5, 1, 2, NULL, true, 0, 5400, 0, 0, 0, 0
				FROM range(80) r1(s), (VALUES ('Day'), ('Hour'), ('Min')) v(sess), (VALUES ('1h'), ('1d')) x(w), range(4) r3(c),
				     (SELECT TIMESTAMP '2024-01-01' + INTERVAL (h) HOUR AS ts FROM range(?) r2(h))
				WHERE w = '1h' OR hour(ts) = 0`, days*24); err != nil {
				b.Fatal(err)
			}
			if _, err := o.db.Exec(`INSERT INTO site_state SELECT 'S' || lpad(s::VARCHAR, 2, '0'), 'Hour', NULL, NULL, 0, 0, 0, 0, 0, 0, 0, now() FROM range(80) r(s)
				ON CONFLICT DO NOTHING`); err != nil {
				b.Fatal(err)
			}
			var rows int64
			o.db.QueryRow(`SELECT count(*) FROM windows`).Scan(&rows)
			pub, err := New(filepath.Join(b.TempDir(), "lake"), Logger(quietLogger()))
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := pub.Publish(ctx, o.db, 0); err != nil {
				b.Fatal(err)
			}
			first := time.Since(start)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := pub.Publish(ctx, o.db, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows), "windows-rows")
			b.ReportMetric(first.Seconds(), "first-publish-s")
		})
	}
}
