package compare_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/earthscope/gtsm-stream/record"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// msg is one gtsm_etl message as it sits on the topic.
type msg struct {
	site, session string
	time          int64
	vals          map[string]*int32 // strain channel -> value (nil: null)
	partition     int
	offset        int64
}

var t0 = time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// topicMessages makes a topic with what the comparison must get right:
// windows crossing hour and day boundaries, millisecond sample times, nulls
// (a channel null for a whole window, so first/last/min/max/mean are NULL),
// negative values, gaps, re-sent records and records arriving late.
func topicMessages() []msg {
	type sess struct {
		name   string
		step   int64
		prefix string
		from   int64
		n      int
	}
	sessions := []sess{
		{"Day", 600_000, "rs", t0 + (16*60+50)*60_000, 80},   // 16:50 on day 1 .. day 2 06:00
		{"Hour", 1_000, "ls", t0 + (23*60+30)*60_000, 4_200}, // 23:30 .. 00:40 next day
		{"Min", 50, "bs", t0 + 24*3600_000 - 2_000, 100},     // 23:59:58.000 .. 00:00:02.950
	}
	var out []msg
	for p, site := range []string{"B009", "B010"} {
		var arrivals []msg
		for si, s := range sessions {
			var late []msg
			for i := 0; i < s.n; i++ {
				tm := s.from + int64(i)*s.step
				if s.name == "Hour" && i >= 1_000 && i < 1_120 { // a 2-minute gap
					continue
				}
				if s.name == "Day" && p == 1 && (i == 10 || i == 11 || i == 40) { // gaps of 2 and 1
					continue
				}
				m := msg{site: site, session: s.name, time: tm, vals: map[string]*int32{}, partition: p}
				for k := 1; k <= 4; k++ {
					ch := fmt.Sprintf("%s%d_t0", s.prefix, k)
					v := int32(48_116_355 + 1_000*k + 7*i*(p+1) + si)
					if k == 4 {
						v = int32(-1_234_567 + (i*13)%1_000 - 5*p) // negative, not monotonic
					}
					switch {
					case k == 3 && i%5 == 2: // scattered nulls
					case site == "B010" && k == 2 && tm < t0+24*3600_000: // null for whole windows
					default:
						m.vals[ch] = &v
					}
				}
				// Ten Hour samples arrive ten minutes late.
				if s.name == "Hour" && site == "B009" && i >= 2_400 && i < 2_410 {
					late = append(late, m)
					continue
				}
				arrivals = append(arrivals, m)
				if s.name == "Hour" && i == 3_000 {
					arrivals = append(arrivals, late...)
				}
			}
		}
		// Re-sent records (identical) at the end of the partition.
		if site == "B009" {
			for _, i := range []int{5, 500, 501, 3_500, 3_501} {
				for _, m := range arrivals {
					if m.session == "Hour" && m.time == sessions[1].from+int64(i)*1_000 {
						arrivals = append(arrivals, m)
						break
					}
				}
			}
		}
		for i := range arrivals {
			arrivals[i].offset = int64(i)
		}
		out = append(out, arrivals...)
	}
	return out
}

// strainChannels are the 12 strain fields, in schema order.
func strainChannels() []string {
	var out []string
	for _, p := range []string{"rs", "ls", "bs"} {
		for k := 1; k <= 4; k++ {
			out = append(out, fmt.Sprintf("%s%d_t0", p, k))
		}
	}
	return out
}

// newDB creates a DuckDB file with the processor's schema (gtsmsql.Migrate)
// and the topic's messages in table topic, as Flink would read them.
func newDB(t *testing.T) (*sql.DB, []msg) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("duckdb", filepath.Join(dir, "gtsm.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	msgs := topicMessages()
	chans := strainChannels()
	var csv strings.Builder
	csv.WriteString("key_site,site,time,timestamp," + strings.Join(chans, ",") + ",session,kafka_partition,kafka_offset\n")
	for _, m := range msgs {
		fmt.Fprintf(&csv, "%s,%s,%d,%s", m.site, m.site, m.time, record.FormatTimestamp(m.time))
		for _, c := range chans {
			if v := m.vals[c]; v != nil {
				fmt.Fprintf(&csv, ",%d", *v)
			} else {
				csv.WriteString(",")
			}
		}
		fmt.Fprintf(&csv, ",%s,%d,%d\n", m.session, m.partition, m.offset)
	}
	path := filepath.Join(dir, "topic.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cols := "key_site VARCHAR, site VARCHAR, \"time\" BIGINT, \"timestamp\" VARCHAR, " +
		strings.Join(chans, " INTEGER, ") + " INTEGER, session VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT"
	for _, q := range []string{
		"CREATE TABLE topic (" + cols + ")",
		fmt.Sprintf("COPY topic FROM '%s' (HEADER, NULLSTR '')", path),
		// What Flink's table adds: the event-time and processing-time
		// attributes (arrival order = offset order in the site's partition).
		`CREATE VIEW flink_gtsm_etl AS SELECT *, epoch_ms("time") AS event_time, kafka_offset AS proc_time FROM topic`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db, msgs
}

// fillProcessorTables writes what the processor would hold, computed by
// DuckDB SQL written independently of the Flink queries (time arithmetic
// instead of TUMBLE, arg_min/arg_max instead of packed keys, LEAD-free
// self-contained window functions), into the processor's own tables, so the
// real sql/queries/*.sql read them.
func fillProcessorTables(t *testing.T, db *sql.DB) {
	t.Helper()
	var unpivot []string
	for _, c := range strainChannels() {
		sess := map[byte]string{'r': "Day", 'l': "Hour", 'b': "Min"}[c[0]]
		unpivot = append(unpivot, fmt.Sprintf(`SELECT key_site, session, "time", '%s' AS channel, %s AS v FROM topic WHERE session = '%s'`, c, c, sess))
	}
	strain := strings.Join(unpivot, " UNION ALL ")
	window := func(width string, ms int64) string {
		return fmt.Sprintf(`INSERT INTO windows (site, session, width, window_start, window_end, channel, n, n_null,
				min, max, mean, first, last, final, late_updates, sum, n_micro, sum_micro)
			SELECT key_site, session, '%[1]s', epoch_ms(("time" // %[2]d) * %[2]d), epoch_ms(("time" // %[2]d) * %[2]d + %[2]d), channel,
				count(*), count(*) FILTER (WHERE v IS NULL), min(v), max(v), avg(v),
				arg_min(v, "time") FILTER (WHERE v IS NOT NULL), arg_max(v, "time") FILTER (WHERE v IS NOT NULL),
				true, 0, coalesce(sum(v), 0), 0, 0
			FROM (%[3]s) GROUP BY ALL`, width, ms, strain)
	}
	step := `CASE session WHEN 'Day' THEN 600000 WHEN 'Hour' THEN 1000 ELSE 50 END`
	for _, q := range []string{
		`INSERT INTO gtsm_etl (key_site, site, "time", "timestamp", ` + strings.Join(strainChannels(), ", ") + `, session, kafka_partition, kafka_offset, late)
			SELECT key_site, site, "time", "timestamp", ` + strings.Join(strainChannels(), ", ") + `, session, kafka_partition, kafka_offset, false FROM topic`,
		window("1h", 3_600_000),
		window("1d", 86_400_000),
		`INSERT INTO gaps SELECT key_site, session, epoch_ms(prev + step), epoch_ms("time" - step), ("time" - prev) // step - 1
			FROM (SELECT key_site, session, "time", ` + step + ` AS step,
			             lag("time") OVER (PARTITION BY key_site, session ORDER BY "time") AS prev
			      FROM (SELECT DISTINCT key_site, session, "time" FROM topic))
			WHERE "time" - prev > step`,
		`INSERT INTO site_state (site, session, first_time, last_time, records, duplicates, late, gaps, missing, kafka_partition, kafka_offset, updated_at)
			SELECT key_site, session, epoch_ms(min("time")), epoch_ms(max("time")), count(DISTINCT "time"), count(*) - count(DISTINCT "time"),
			       count(*) FILTER (WHERE "time" < before AND first_arrival), 0, 0, any_value(kafka_partition), max(kafka_offset), now()
			FROM (SELECT *, max("time") OVER (PARTITION BY key_site, session ORDER BY kafka_offset
			                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before,
			                kafka_offset = min(kafka_offset) OVER (PARTITION BY key_site, session, "time") AS first_arrival
			      FROM topic)
			GROUP BY key_site, session`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.80s: %v", q, err)
		}
	}
}

var (
	tumbleRe = regexp.MustCompile(`TABLE\(TUMBLE\(TABLE (\w+), DESCRIPTOR\((\w+)\), INTERVAL '(\d+)' (HOUR|DAY|MINUTE)\)\)`)
	objectRe = regexp.MustCompile(`\b(gtsm_etl|gtsm_strain)\b`)
)

// flinkToDuckDB translates the Flink SQL of flink/ into DuckDB: just the
// constructs those files use, so the fake gateway computes what the real
// query text says.
func flinkToDuckDB(stmt string) (string, error) {
	if strings.Contains(stmt, "CREATE TABLE IF NOT EXISTS gtsm_etl") {
		return "", nil // emulated by the flink_gtsm_etl view over table topic
	}
	s := strings.ReplaceAll(stmt, "`", `"`)
	s = strings.Replace(s, "CREATE TEMPORARY VIEW IF NOT EXISTS", "CREATE OR REPLACE VIEW", 1)
	s = tumbleRe.ReplaceAllString(s,
		`(SELECT *, time_bucket(INTERVAL '$3 $4', $2) AS window_start, time_bucket(INTERVAL '$3 $4', $2) + INTERVAL '$3 $4' AS window_end FROM $1)`)
	s = objectRe.ReplaceAllString(s, "flink_$1")
	s = strings.ReplaceAll(s, "TIMESTAMP(3)", "TIMESTAMP")
	var err error
	if s, err = replaceCall(s, "TO_TIMESTAMP_LTZ(", func(args string) (string, error) {
		expr, prec, ok := cutLast(args, ",")
		if !ok || strings.TrimSpace(prec) != "3" {
			return "", fmt.Errorf("TO_TIMESTAMP_LTZ(%s): only precision 3 is translated", args)
		}
		return "epoch_ms(" + expr + ")", nil
	}); err != nil {
		return "", err
	}
	if strings.Contains(s, "`") || strings.Contains(s, "TUMBLE") {
		return "", fmt.Errorf("untranslated Flink SQL left: %s", s)
	}
	return s, nil
}

// replaceCall rewrites every call fn(args) with balanced parentheses.
func replaceCall(s, fn string, rewrite func(args string) (string, error)) (string, error) {
	for {
		i := strings.Index(s, fn)
		if i < 0 {
			return s, nil
		}
		depth, j := 1, i+len(fn)
		for ; j < len(s) && depth > 0; j++ {
			switch s[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		if depth != 0 {
			return "", fmt.Errorf("unbalanced %s", fn)
		}
		repl, err := rewrite(s[i+len(fn) : j-1])
		if err != nil {
			return "", err
		}
		s = s[:i] + repl + s[j:]
	}
}

// cutLast splits at the last top-level sep.
func cutLast(s, sep string) (string, string, bool) {
	depth := 0
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ')':
			depth++
		case '(':
			depth--
		}
		if depth == 0 && strings.HasPrefix(s[i:], sep) {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// expected computes, in Go from the messages, a few facts the tests assert
// exactly, independently of any SQL.
type expected struct {
	records, duplicates, late map[string]int64 // "site/session"
	lastTime                  map[string]int64
}

func expect(msgs []msg) expected {
	e := expected{map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}}
	seen := map[string]map[int64]bool{}
	maxSoFar := map[string]int64{}
	sorted := append([]msg(nil), msgs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].partition != sorted[j].partition {
			return sorted[i].partition < sorted[j].partition
		}
		return sorted[i].offset < sorted[j].offset
	})
	for _, m := range sorted {
		k := m.site + "/" + m.session
		if seen[k] == nil {
			seen[k] = map[int64]bool{}
			maxSoFar[k] = m.time
		}
		if seen[k][m.time] {
			e.duplicates[k]++ // a re-sent record is a duplicate, never late
		} else {
			seen[k][m.time] = true
			e.records[k]++
			if m.time < maxSoFar[k] {
				e.late[k]++
			}
		}
		maxSoFar[k] = max(maxSoFar[k], m.time)
		e.lastTime[k] = max(e.lastTime[k], m.time)
	}
	return e
}
