package registry

import (
	"errors"
	"net/url"
	"strings"
)

// RedactURL returns s without the user-info of a URL ("user:password@"),
// for logs and error messages: the registry URL may carry basic-auth
// credentials. It works on strings url.Parse refuses too (a password with a
// space, '#', '/' or '@' in it), so a malformed URL cannot carry its
// password into an error: everything between "://" (or the start) and the
// last '@' is cut. A URL whose path holds an '@' loses more than its
// user-info, which is the safe way to be wrong.
func RedactURL(s string) string {
	rest, scheme := s, ""
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return s
	}
	return scheme + "***@" + rest[at+1:]
}

// SafeURL is c.URL without its user-info, for messages.
func (c Config) SafeURL() string { return RedactURL(c.URL) }

// parseURL is url.Parse with an error that does not quote the URL (url.Error
// quotes it whole, password included).
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	var ue *url.Error
	if errors.As(err, &ue) {
		return nil, ue.Err
	}
	return u, err
}
