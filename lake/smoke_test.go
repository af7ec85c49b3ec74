package lake

import (
	"context"
	"path/filepath"
	"testing"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	d := t.TempDir()
	db, err := gtsmsql.Open(ctx, filepath.Join(d, "x.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`INSERT INTO gtsm_etl (key_site, site, "time", session, kafka_partition, kafka_offset, late) VALUES ('A','A',1700000000000,'Hour',0,0,false),('A','A',1700000001000,'Hour',0,1,false)`,
		`INSERT INTO site_state VALUES ('A','Hour','2023-11-14','2023-11-14',2,0,0,0,0,0,1,now())`,
		`INSERT INTO kafka_offsets VALUES ('gtsm_etl',0,2)`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New(filepath.Join(d, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, db, 0); err != nil {
		t.Fatal(err)
	}
	q, err := OpenQuery(ctx, p.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := q.DB().QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&n); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	if err := q.DB().QueryRow(`SELECT count(*) FROM site_state`).Scan(&n); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if err := q.DB().QueryRow(`SELECT count(*) FROM windows`).Scan(&n); err != nil || n != 0 {
		t.Fatal(n, err)
	}
	if err := q.DB().QueryRow(`SELECT count(*) FROM strain`).Scan(&n); err != nil || n != 8 {
		t.Fatal(n, err)
	}
}
