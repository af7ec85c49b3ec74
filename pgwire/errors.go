package pgwire

import (
	"context"
	"errors"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"
	psqlerr "github.com/jeroenrinzema/psql-wire/errors"
)

var (
	codeSyntax    = codes.Syntax                 // 42601
	codeReadOnly  = codes.ReadOnlySQLTransaction // 25006
	codeLimit     = codes.ProgramLimitExceeded   // 54000
	codeCanceled  = codes.QueryCanceled          // 57014
	codeInternal  = codes.Internal               // XX000
	codeProtocol  = codes.ProtocolViolation      // 08P01
	codeBadParam  = codes.InvalidParameterValue  // 22023
	codeUndefined = codes.UndefinedTable         // 42P01
)

// pgError turns err into a Postgres ErrorResponse (severity ERROR, so the
// session stays usable). With code "" the SQLSTATE is derived from DuckDB's
// error type.
func pgError(err error, code codes.Code, hint string) error {
	if code == "" {
		code = sqlState(err)
	}
	err = psqlerr.WithSeverity(psqlerr.WithCode(err, code), psqlerr.LevelError)
	if hint != "" {
		err = psqlerr.WithHint(err, hint)
	}
	return err
}

// sqlState maps DuckDB's error classes to the nearest SQLSTATE, so clients
// that branch on codes (syntax vs missing table vs bad data) can.
func sqlState(err error) codes.Code {
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return codeInternal
	}
	switch de.Type {
	case duckdb.ErrorTypeParser, duckdb.ErrorTypeSyntax:
		return codeSyntax
	case duckdb.ErrorTypeCatalog:
		if strings.Contains(de.Msg, "does not exist") {
			return codeUndefined
		}
		return codes.SyntaxErrorOrAccessRuleViolation
	case duckdb.ErrorTypeBinder:
		if strings.Contains(de.Msg, "not found") || strings.Contains(de.Msg, "does not have a column") {
			return codes.UndefinedColumn
		}
		return codes.SyntaxErrorOrAccessRuleViolation
	case duckdb.ErrorTypeTransaction:
		if strings.Contains(de.Msg, "read-only") {
			return codeReadOnly
		}
		return codes.InvalidTransactionState
	case duckdb.ErrorTypeDivideByZero:
		return codes.DivisionByZero
	case duckdb.ErrorTypeOutOfRange:
		return codes.NumericValueOutOfRange
	case duckdb.ErrorTypeConversion, duckdb.ErrorTypeInvalidInput:
		return codes.InvalidTextRepresentation
	case duckdb.ErrorTypeMismatchType, duckdb.ErrorTypeInvalidType, duckdb.ErrorTypeParameterNotResolved:
		return codes.DatatypeMismatch
	case duckdb.ErrorTypeInterrupt:
		return codeCanceled
	case duckdb.ErrorTypeOutOfMemory:
		return codes.OutOfMemory
	case duckdb.ErrorTypePermission:
		return codes.InsufficientPrivilege
	case duckdb.ErrorTypeNotImplemented:
		return codes.FeatureNotSupported
	case duckdb.ErrorTypeIO:
		return codes.Io
	}
	return codeInternal
}

// newStatement is wire.NewStatement with the statement's failures logged
// (logStmtError).
func (s *Server) newStatement(text string, fn wire.PreparedStatementFn, opts ...wire.PreparedOptionFn) *wire.PreparedStatement {
	return wire.NewStatement(func(ctx context.Context, w wire.DataWriter, ps []wire.Parameter) error {
		err := fn(ctx, w, ps)
		s.logStmtError(text, err)
		return err
	}, opts...)
}

// logStmtError logs a statement the client sent that failed, at info
// level: its command word, SQLSTATE and the error's first line (not the
// statement, which may hold data the client considers private).
func (s *Server) logStmtError(text string, err error) {
	if err == nil || errors.Is(err, wire.ErrSuspendedHandlerClosed) {
		return
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	s.cfg.Logger.Info("SQL endpoint: statement failed", "command", firstWord(text), "sqlstate", string(psqlerr.GetCode(err)), "err", msg)
}
