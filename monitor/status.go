package monitor

import (
	"context"
	"database/sql"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics, /healthz, the status page / and /plot/SITE/SESSION.svg.
// health reports whether the processor is working (nil) or why not; db is the
// processor's DuckDB, read in read-only transactions.
func Handler(db *sql.DB, m *Metrics, health func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := health(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /plot/{site}/{session}", func(w http.ResponseWriter, r *http.Request) {
		session, ok := strings.CutSuffix(r.PathValue("session"), ".svg")
		if !ok {
			http.NotFound(w, r)
			return
		}
		plots, err := loadPlots(r.Context(), db, r.PathValue("site"), session)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if len(plots) == 0 {
			http.Error(w, fmt.Sprintf("no 10-minute windows for site %q session %q", r.PathValue("site"), session), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Write([]byte(plots[0].SVG))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page, err := loadStatus(r.Context(), db)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusTmpl.Execute(w, page); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

type siteRow struct {
	Site, Session, LastTime                  string
	Records, Duplicates, Late, Gaps, Missing int64
}

type gapRow struct {
	Site, Session, Start, End string
	Missing                   int64
}

type statusPage struct {
	Generated string
	Sites     []siteRow
	Gaps      []gapRow
	Plots     []plot
}

// readTx runs fn in a read-only transaction on one pooled connection, so the
// page never sees half a batch. (The DuckDB driver refuses sql.TxOptions
// ReadOnly, so the transaction is opened with DuckDB's own statement.)
func readTx(ctx context.Context, db *sql.DB, fn func(*sql.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("status: connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
		return fmt.Errorf("status: begin read-only transaction: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	return fn(conn)
}

func loadStatus(ctx context.Context, db *sql.DB) (*statusPage, error) {
	p := &statusPage{Generated: time.Now().UTC().Format(time.RFC3339)}
	err := readTx(ctx, db, func(tx *sql.Conn) error {
		rows, err := tx.QueryContext(ctx, `SELECT site, session, strftime(last_time, '%Y-%m-%d %H:%M:%S.%g'),
			records, duplicates, late, gaps, missing FROM site_state ORDER BY site, session`)
		if err != nil {
			return fmt.Errorf("status: read site_state: %w", err)
		}
		for rows.Next() {
			var s siteRow
			var last sql.NullString
			if err := rows.Scan(&s.Site, &s.Session, &last, &s.Records, &s.Duplicates, &s.Late, &s.Gaps, &s.Missing); err != nil {
				rows.Close()
				return fmt.Errorf("status: scan site_state: %w", err)
			}
			s.LastTime = last.String
			p.Sites = append(p.Sites, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT site, session, strftime(gap_start, '%Y-%m-%d %H:%M:%S.%g'),
			strftime(gap_end, '%Y-%m-%d %H:%M:%S.%g'), missing FROM gaps ORDER BY gap_start DESC LIMIT 50`)
		if err != nil {
			return fmt.Errorf("status: read gaps: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var g gapRow
			if err := rows.Scan(&g.Site, &g.Session, &g.Start, &g.End, &g.Missing); err != nil {
				return fmt.Errorf("status: scan gaps: %w", err)
			}
			p.Gaps = append(p.Gaps, g)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	for _, s := range p.Sites {
		plots, err := loadPlots(ctx, db, s.Site, s.Session)
		if err != nil {
			return nil, err
		}
		p.Plots = append(p.Plots, plots...)
	}
	return p, nil
}

// loadPlots reads the 10-minute window means of a site's session over the last
// day of its data (the data's own last day: archives are years old) and draws
// the four gauges as stacked curves.
func loadPlots(ctx context.Context, db *sql.DB, site, session string) ([]plot, error) {
	var series [4][]point
	var names [4]string
	err := readTx(ctx, db, func(tx *sql.Conn) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT channel, epoch_ms(window_start), mean FROM windows w
			WHERE site = ? AND session = ? AND width = '10m' AND mean IS NOT NULL
			  AND window_start >= (SELECT max(window_start) FROM windows
			                       WHERE site = w.site AND session = w.session AND width = '10m') - INTERVAL 1 DAY
			ORDER BY channel, window_start`, site, session)
		if err != nil {
			return fmt.Errorf("plot %s %s: read windows: %w", site, session, err)
		}
		defer rows.Close()
		for rows.Next() {
			var ch string
			var ms int64
			var mean float64
			if err := rows.Scan(&ch, &ms, &mean); err != nil {
				return fmt.Errorf("plot %s %s: %w", site, session, err)
			}
			g := gaugeOf(ch)
			if g < 0 {
				continue // not a strain channel: the plot is of the four gauges only
			}
			names[g] = ch
			series[g] = append(series[g], point{ms, mean})
		}
		return rows.Err()
	})
	if err != nil || (len(series[0])+len(series[1])+len(series[2])+len(series[3])) == 0 {
		return nil, err
	}
	title := fmt.Sprintf("%s %s: 10-minute mean strain counts, last day of data", site, session)
	return []plot{{Site: site, Session: session, SVG: template.HTML(renderSVG(title, names, series))}}, nil
}

// gaugeOf maps rs1_t0/ls2_t0/bs4_t0 to gauge index 0..3, or -1.
func gaugeOf(ch string) int {
	if len(ch) == 6 && (ch[0] == 'r' || ch[0] == 'l' || ch[0] == 'b') && ch[1] == 's' && ch[2] >= '1' && ch[2] <= '4' && ch[3:] == "_t0" {
		return int(ch[2] - '1')
	}
	return -1
}

var statusTmpl = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>gtsm processor</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}td:first-child,td:nth-child(2){text-align:left}</style>
</head><body>
<h1>gtsm processor</h1>
<p>Generated {{.Generated}} · <a href="/metrics">metrics</a> · <a href="/healthz">health</a></p>
<h2>Sites</h2>
{{if .Sites}}<table><tr><th>site</th><th>session</th><th>last event time (UTC)</th><th>records</th><th>duplicates</th><th>late</th><th>gaps</th><th>missing samples</th></tr>
{{range .Sites}}<tr><td>{{.Site}}</td><td>{{.Session}}</td><td>{{.LastTime}}</td><td>{{.Records}}</td><td>{{.Duplicates}}</td><td>{{.Late}}</td><td>{{.Gaps}}</td><td>{{.Missing}}</td></tr>
{{end}}</table>{{else}}<p>No records processed yet.</p>{{end}}
<h2>Recent gaps</h2>
{{if .Gaps}}<table><tr><th>site</th><th>session</th><th>first missing</th><th>last missing</th><th>missing</th></tr>
{{range .Gaps}}<tr><td>{{.Site}}</td><td>{{.Session}}</td><td>{{.Start}}</td><td>{{.End}}</td><td>{{.Missing}}</td></tr>
{{end}}</table>{{else}}<p>No gaps.</p>{{end}}
<h2>Strain</h2>
{{range .Plots}}<div>{{.SVG}}</div>{{else}}<p>No windows yet.</p>{{end}}
</body></html>
`))
