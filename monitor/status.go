package monitor

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics, /healthz, the status page /, its plot data
// /api/series (see serveSeries), the Level-2 plots' data /api/level2 (see
// serveLevel2) and the page's script and uPlot under /static/.
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
	mux.HandleFunc("GET /api/series", serveSeries(db))
	mux.HandleFunc("GET /api/level2", serveLevel2(db))
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page, err := loadStatus(r.Context(), db)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := statusTmpl.Execute(w, page); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

// staticFS is the page's script and style and the uPlot build it uses
// (static/uplot: fetched with npm by fetch.sh, MIT, version in VERSION):
// embedded so the page works without any network but the processor's.
//
//go:embed static
var staticFS embed.FS

type siteRow struct {
	Site, Session, LastTime                  string
	Records, Duplicates, Late, Gaps, Missing int64
	// Nulls counts gauge values that are NULL (fill values in the bottle
	// files, 999999): stored records, unlike Missing (samples that never
	// came). Summed over the session's four gauges, from the 1d windows.
	Nulls int64
}

type gapRow struct {
	Site, Session, Start, End string
	Missing                   int64
}

// plotRef is one site and session drawn on the page (by static/status.js,
// from /api/series).
type plotRef struct {
	Site, Session, Channels string
	Rate                    string // sample rate, as people say it
}

type statusPage struct {
	Generated string
	Sites     []siteRow
	Gaps      []gapRow
	Plots     []plotRef
	// Level2Sites are the sites the processor runs Level-2 for (a
	// level2_state row each: one per site, so listing them costs nothing).
	Level2Sites []string
}

var sessionRates = map[string]string{"Day": "one sample per 10 minutes", "Hour": "1 sample/s", "Min": "20 samples/s"}

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
	p := &statusPage{Generated: time.Now().UTC().Format("2006-01-02 15:04:05 UTC")}
	err := readTx(ctx, db, func(tx *sql.Conn) error {
		rows, err := tx.QueryContext(ctx, `SELECT s.site, s.session, strftime(s.last_time, '%Y-%m-%d %H:%M:%S.%g'),
			s.records, s.duplicates, s.late, s.gaps, s.missing,
			coalesce((SELECT sum(w.n_null) FROM windows w WHERE w.site = s.site AND w.session = s.session AND w.width = '1d'), 0)
			FROM site_state s ORDER BY s.site, s.session`)
		if err != nil {
			return fmt.Errorf("status: read site_state: %w", err)
		}
		for rows.Next() {
			var s siteRow
			var last sql.NullString
			if err := rows.Scan(&s.Site, &s.Session, &last, &s.Records, &s.Duplicates, &s.Late, &s.Gaps, &s.Missing, &s.Nulls); err != nil {
				rows.Close()
				return fmt.Errorf("status: scan site_state: %w", err)
			}
			s.LastTime = last.String
			p.Sites = append(p.Sites, s)
			if info, ok := sessions[s.Session]; ok && last.Valid {
				p.Plots = append(p.Plots, plotRef{Site: s.Site, Session: s.Session,
					Channels: strings.Join(info.channels[:], ", "), Rate: sessionRates[s.Session]})
			}
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
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		rows, err = tx.QueryContext(ctx, `SELECT site FROM level2_state ORDER BY site`)
		if err != nil {
			return fmt.Errorf("status: read level2_state: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var site string
			if err := rows.Scan(&site); err != nil {
				return fmt.Errorf("status: scan level2_state: %w", err)
			}
			p.Level2Sites = append(p.Level2Sites, site)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

var statusTmpl = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gtsm processor</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/uplot/uPlot.min.css">
<link rel="stylesheet" href="/static/status.css">
<script src="/static/uplot/uPlot.iife.min.js" defer></script>
<script src="/static/status.js" defer></script>
</head><body>
<h1>gtsm processor</h1>
<div id="tables">
<p>Generated <span id="generated">{{.Generated}}</span> · <a href="/metrics">metrics</a> · <a href="/healthz">health</a></p>
<h2>Sites</h2>
{{if .Sites}}<table><tr><th>site</th><th>session</th><th>last event time (UTC)</th><th>records</th><th>duplicates</th><th>late</th><th>gaps</th>
<th title="expected samples that never came: holes in the timeline (gaps table)">missing samples (timeline gaps)</th>
<th title="gauge values that came as fill values (999999), stored as NULL; summed over the four gauges">NULL gauge values (fill)</th></tr>
{{range .Sites}}<tr><td>{{.Site}}</td><td>{{.Session}}</td><td>{{.LastTime}}</td><td>{{.Records}}</td><td>{{.Duplicates}}</td><td>{{.Late}}</td><td>{{.Gaps}}</td><td>{{.Missing}}</td><td>{{.Nulls}}</td></tr>
{{end}}</table>
<p class="note"><b>missing samples</b>: samples whose time never came (gaps in the timeline).
<b>NULL gauge values</b>: samples that came with a fill value (999999) for a gauge, stored as NULL; they are not in "missing".
Both break the plotted lines.</p>{{else}}<p>No records processed yet.</p>{{end}}
<h2>Recent gaps</h2>
{{if .Gaps}}<table><tr><th>site</th><th>session</th><th>first missing (UTC)</th><th>last missing (UTC)</th><th>missing samples</th></tr>
{{range .Gaps}}<tr><td>{{.Site}}</td><td>{{.Session}}</td><td>{{.Start}}</td><td>{{.End}}</td><td>{{.Missing}}</td></tr>
{{end}}</table>{{else}}<p>No gaps.</p>{{end}}
</div>
<h2>Strain</h2>
{{if or .Plots .Level2Sites}}<form id="controls">
<label>range <select id="range">
<option value="">default (Day 7 d, Hour 1 d, Min 1 h, Level-2 30 d)</option><option value="60000">1 min</option><option value="600000">10 min</option>
<option value="3600000">1 h</option><option value="21600000">6 h</option><option value="86400000">1 d</option>
<option value="604800000">7 d</option><option value="2592000000">30 d</option><option value="31536000000">1 y</option><option value="all">all</option>
</select> before each session's last sample</label>
<label>y scale <select id="yscale"><option value="own">each gauge its own</option><option value="span">same span (compare amplitudes)</option><option value="same">same range</option></select></label>
<label>unit <select id="unit"><option value="counts">counts</option><option value="ue">µε (needs site_reference)</option></select></label>
<label><input type="checkbox" id="refresh" checked> refresh every 30 s</label>
</form>
<p class="note">Drag across a plot to zoom (the data is fetched again at the finer step), double-click to return to the range.
Each point is one bucket: the line is the mean, the shaded band min..max. Times are UTC.</p>
<noscript><p>The plots need JavaScript. Their data is JSON at /api/series?site=SITE&amp;session=SESSION and /api/level2?site=SITE (see docs/monitor.md).</p></noscript>
{{end}}{{range .Plots}}<section class="plot" data-site="{{.Site}}" data-session="{{.Session}}">
<h3>{{.Site}} {{.Session}} session: {{.Channels}} ({{.Rate}})</h3>
<p class="range">loading…</p><div class="panels"></div></section>
{{else}}<p>No samples yet.</p>{{end}}
{{with .Level2Sites}}<h2>Level-2 strain</h2>
<form id="l2controls">
<label>site <select id="l2site">{{range .}}<option value="{{.}}">{{.}}</option>{{end}}</select></label>
<label>regional strain with matrix <select id="l2matrix"><option value="">the station's first (lab)</option></select></label>
<label>show <select id="l2show"><option value="both">raw and corrected</option><option value="raw">raw</option><option value="corr">corrected</option></select></label>
</form>
<p class="note">Level-2 from the processor (views level2_gauge and level2_regional): linearized gauge strain decimated to 300 s,
and the regional strains of one calibration matrix, in µε. <b>raw</b> is before corrections;
<b>corrected</b> is raw minus the corrections present (atmp_c barometric, tide_c tidal, offset_c offsets).
A correction that is NULL (no metadata, no pressure, no tidal constituents) is not applied: the legend says which were,
in how many rows, and the tooltip which were in the bucket under the cursor. A regional strain is corrected
by a correction only where all four gauges have it.</p>
<section class="level2" data-site="{{index . 0}}">
<h3>Level-2: <span class="l2title">{{index . 0}}</span></h3>
<p class="range">loading…</p><div class="panels"></div></section>
{{end}}</body></html>
`))
