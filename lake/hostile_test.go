package lake

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostileSites are keys a producer may send: a glob, a path, a traversal
// and a name longer than a file name may be.
var hostileSites = []string{"B*", "a/b", "x/../../..", "x/../../../tmp/owned", strings.Repeat("K", 300), "'; DROP TABLE windows; --"}

// TestHostileKeys: site names are data. B009's rows in the lake are the
// same with and without the hostile keys beside it on its partition;
// every hostile key's rows are published too (the partition does not
// stall); nothing is written outside the lake; no path in the lake holds
// a site name; the independent reader agrees.
func TestHostileKeys(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, hostile bool) (*sql.DB, string, string) {
		o := newFakeOwner(t)
		root := t.TempDir()
		dir := filepath.Join(root, "lake")
		pub, err := New(dir, Logger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		o.commit("B009", 0, 12, day1+100, day2+100)
		if err := pub.Publish(ctx, o.db, 0); err != nil {
			t.Fatal(err)
		}
		if hostile {
			for _, s := range hostileSites {
				o.commit(s, 0, 6, day1+300, day2+300)
			}
		}
		for i := 0; i < 2; i++ { // late data for B009 and the hostile keys' gaps filled
			if hostile {
				for _, s := range hostileSites {
					o.commit(s, 0, 5, day1+400+int64(i))
				}
			}
			if err := pub.Publish(ctx, o.db, 0); err != nil {
				t.Fatalf("publish with hostile keys: %v", err)
			}
		}
		return o.db, root, dir
	}
	plainDB, _, plain := run(t, false)
	hostDB, root, host := run(t, true)

	for _, tb := range []struct{ name, col string }{
		{"gtsm_etl", "key_site"}, {"windows", "site"}, {"gaps", "site"}, {"site_state", "site"},
	} {
		q := "SELECT * FROM " + tb.name + " WHERE " + tb.col + " = 'B009'"
		if tb.name == "gtsm_etl" {
			q += " AND kafka_offset < 12" // the offsets B009 had in both runs
		}
		qp, err := OpenQuery(ctx, plain)
		if err != nil {
			t.Fatal(err)
		}
		want := sqlLines(t, qp.DB(), q)
		qp.Close()
		qh, err := OpenQuery(ctx, host)
		if err != nil {
			t.Fatal(err)
		}
		got := sqlLines(t, qh.DB(), q)
		qh.Close()
		if len(want) == 0 {
			t.Fatalf("%s: B009 has no rows: the comparison proves nothing", tb.name)
		}
		diff(t, "B009 beside hostile keys: "+tb.name, got, want)
	}
	checkLake(t, host, hostDB, "hostile keys")
	checkIndependent(t, host, []*sql.DB{hostDB}, "hostile keys")
	checkIndependent(t, plain, []*sql.DB{plainDB}, "plain")
	var sites int
	if err := hostDB.QueryRow(`SELECT count(DISTINCT key_site) FROM gtsm_etl`).Scan(&sites); err != nil || sites != 1+len(hostileSites) {
		t.Fatalf("owner has %d sites, %v", sites, err)
	}

	// Nothing outside the lake: the root holds only it; inside, no path
	// has a site's name, a "..", or a link.
	es, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name() != "lake" {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("the lake's parent holds %v, want only lake", names)
	}
	if _, err := os.Stat("/tmp/owned"); err == nil {
		t.Errorf("/tmp/owned exists")
	}
	var paths int
	filepath.WalkDir(host, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		paths++
		rel, _ := filepath.Rel(host, p)
		if d.Type()&os.ModeSymlink != 0 {
			t.Errorf("symbolic link in the lake: %s", rel)
		}
		for _, s := range append([]string{"B009", "KKKKKKKK", "owned", "DROP"}, "*") {
			if strings.Contains(rel, s) {
				t.Errorf("lake path %s holds %q (a site name)", rel, s)
			}
		}
		return nil
	})
	t.Logf("the hostile lake has %d paths", paths)
}

// TestSymlinkNotFollowed: a table's data directory replaced by a link to a
// directory outside the lake makes publishing fail with an error naming
// the link, and nothing is written through it; a metadata file listing a
// data file outside the lake is refused by the query side.
func TestSymlinkNotFollowed(t *testing.T) {
	ctx := context.Background()
	o := newFakeOwner(t)
	dir := filepath.Join(t.TempDir(), "lake")
	outside := t.TempDir()
	pub, err := New(dir, Logger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	o.commit("A", 0, 5, day1+100)
	if err := pub.Publish(ctx, o.db, 0); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "gtsm_etl", "data")
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, data); err != nil {
		t.Fatal(err)
	}
	o.commit("A", 0, 5, day1+200)
	err = pub.Publish(ctx, o.db, 0)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), data) {
		t.Errorf("publish through a linked data directory: %v, want an error naming the link %s", err, data)
	}
	if es, _ := os.ReadDir(outside); len(es) != 0 {
		t.Errorf("%d entries written through the link outside the lake", len(es))
	}

	for _, c := range []struct {
		loc string
		ok  bool
	}{
		{"file://" + filepath.Join(dir, "windows", "data", "x.parquet"), true},
		{filepath.Join(dir, "windows", "data", "x.parquet"), true},
		{"file://" + filepath.Join(dir, "..", "x.parquet"), false},
		{"file:///etc/passwd", false},
		{"s3://bucket/x.parquet", false},
		{"file://" + filepath.Join(data, "x.parquet"), false}, // through the link
	} {
		_, err := localPath(dir, c.loc)
		if (err == nil) != c.ok {
			t.Errorf("localPath(%s): %v, want ok=%v", c.loc, err, c.ok)
		}
	}
}

// TestCorruptDataFile: a truncated data file of one table fails the
// statements that read it, with a message naming the file; a statement
// that filters on the other site's rows answers; other tables answer; the
// service (pgwire) stays up and answers again.
func TestCorruptDataFile(t *testing.T) {
	ctx := context.Background()
	o := newFakeOwner(t)
	dir := filepath.Join(t.TempDir(), "lake")
	pub, err := New(dir, Logger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	o.commit("A", 0, 10, day1+100)
	o.commit("B", 1, 10, day2+100)
	for p := int32(0); p < 2; p++ {
		if err := pub.Publish(ctx, o.db, p); err != nil {
			t.Fatal(err)
		}
	}
	files := independentFiles(t, dir, "gtsm_etl")
	if len(files) != 2 {
		t.Fatalf("gtsm_etl has %d files, want 2 (one per site-day)", len(files))
	}
	victim := files[0]
	st, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(victim, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	q, err := OpenQuery(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// The query database holds the lake's views and the project's views,
	// nothing else: no table, no other schema.
	var tablesN, schemas, views int
	if err := q.DB().QueryRow(`SELECT (SELECT count(*) FROM duckdb_tables()),
		(SELECT count(*) FROM duckdb_schemas() WHERE NOT internal AND schema_name <> 'main'),
		(SELECT count(*) FROM duckdb_views() WHERE NOT internal AND schema_name = 'main')`).Scan(&tablesN, &schemas, &views); err != nil {
		t.Fatal(err)
	}
	if tablesN != 0 || schemas != 0 || views < len(tables) {
		t.Errorf("query database: %d tables, %d extra schemas, %d views; want 0, 0 and the lake's %d and more", tablesN, schemas, views, len(tables))
	}
	c := serve(t, q.DB(), q.Dir())
	for i := 0; i < 3; i++ {
		_, err := c.Exec(ctx, `SELECT count(*) FROM gtsm_etl`)
		if err == nil || !strings.Contains(err.Error(), filepath.Base(victim)) {
			t.Errorf("reading a truncated file: %v, want an error naming %s", err, victim)
		}
		// The other site's rows answer (the bad file's branch is pruned).
		var failed, answered int
		for _, site := range []string{"A", "B"} {
			var n int64
			err := c.QueryRow(ctx, `SELECT count(*) FROM gtsm_etl WHERE key_site = $1`, site).Scan(&n)
			switch {
			case err != nil && strings.Contains(err.Error(), filepath.Base(victim)):
				failed++
			case err == nil && n == 10:
				answered++
			default:
				t.Errorf("gtsm_etl of site %s: %d rows, %v", site, n, err)
			}
		}
		if failed != 1 || answered != 1 {
			t.Errorf("per-site reads: %d failed naming the file, %d answered; want 1 and 1", failed, answered)
		}
		if got := pgLines(t, c, `SELECT count(*) FROM windows`); len(got) != 1 || got[0] == "0" {
			t.Errorf("windows after the failed statement: %v", got)
		}
		if got := pgLines(t, c, `SELECT site, records FROM site_state`); len(got) != 2 {
			t.Errorf("site_state after the failed statement: %v", got)
		}
	}
	// The owner's next commit of that table replaces nothing of it (an
	// append), and the rest of the lake keeps publishing.
	o.commit("B", 1, 3, day2+200)
	if err := pub.Publish(ctx, o.db, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := q.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got := pgLines(t, c, `SELECT records FROM site_state WHERE site = 'B'`); len(got) == 1 && got[0] == "13" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("site_state of B not refreshed after the corrupt file")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
