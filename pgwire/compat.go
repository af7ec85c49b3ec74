package pgwire

import (
	"context"
	"database/sql/driver"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	wire "github.com/jeroenrinzema/psql-wire"
)

// serverVersion is what clients see as the Postgres version (ParameterStatus
// server_version and SHOW server_version): psql and pgx pick their catalog
// queries by it.
const serverVersion = "15.0 (gtsm DuckDB, read-only)"

// compatMacros are created on each of the endpoint's own connections, as
// TEMPORARY macros: they live in that connection's temp schema only, so
// nothing is written to the database file and the processor never sees
// them. They fill the pg_catalog functions Postgres clients' introspection
// calls and DuckDB lacks.
var compatMacros = []string{
	`CREATE OR REPLACE TEMP MACRO pg_get_userbyid(id) AS 'gtsm'`,
	`CREATE OR REPLACE TEMP MACRO pg_encoding_to_char(enc) AS 'UTF8'`,
	`CREATE OR REPLACE TEMP MACRO pg_tablespace_location(id) AS ''`,
	`CREATE OR REPLACE TEMP MACRO pg_relation_size(id) AS 0::BIGINT`,
	`CREATE OR REPLACE TEMP MACRO pg_table_size(id) AS 0::BIGINT`,
	`CREATE OR REPLACE TEMP MACRO pg_total_relation_size(id) AS 0::BIGINT`,
	`CREATE OR REPLACE TEMP MACRO pg_database_size(id) AS 0::BIGINT`,
}

// initConn prepares each new endpoint connection (duckdb.NewConnector's
// init hook).
func initConn(ex driver.ExecerContext) error {
	for _, m := range compatMacros {
		if _, err := ex.ExecContext(context.Background(), m, nil); err != nil {
			return fmt.Errorf("SQL endpoint connection setup: %s: %w", m, err)
		}
	}
	return nil
}

var showRE = regexp.MustCompile(`(?is)^\s*SHOW\s+"?([a-z_]+)"?\s*;?\s*$`)

// show answers SHOW of the Postgres parameters clients ask for, and
// gtsm_database: the absolute path of the DuckDB file this endpoint serves
// (`gtsm sql --db FILE` checks it before trusting the endpoint with FILE).
func (s *Server) show(text string) *wire.PreparedStatement {
	m := showRE.FindStringSubmatch(stripLeadingComments(text))
	if m == nil {
		return nil
	}
	name := strings.ToLower(m[1])
	var v string
	switch name {
	case "server_version":
		v = serverVersion
	case "server_version_num":
		v = "150000"
	case "gtsm_database":
		v = s.path
	case "transaction_isolation":
		v = "serializable"
	case "standard_conforming_strings":
		v = "on"
	case "client_encoding", "server_encoding":
		v = "UTF8"
	case "datestyle":
		v = "ISO, MDY"
	case "timezone":
		v = "UTC"
	case "integer_datetimes":
		v = "on"
	case "max_identifier_length":
		v = "63"
	default:
		return nil
	}
	cols := wire.Columns{{Name: name, Oid: pgtype.TextOID, Width: -1}}
	return wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
		if err := w.Row([]any{v}); err != nil {
			return err
		}
		return w.Complete("SHOW")
	}, wire.WithColumns(cols))
}
