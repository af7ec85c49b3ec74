package registry

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://localhost:8081", "http://localhost:8081"},
		{"http://alice:pw@host:8081", "http://***@host:8081"},
		{"https://alice@host:8081/ctx", "https://***@host:8081/ctx"},
		{"http://alice:p@ss@host:8081", "http://***@host:8081"},       // '@' in the password
		{"http://alice:p w#x?@host:8081/a", "http://***@host:8081/a"}, // url.Parse refuses it
		{"http://alice:p/w@host:8081", "http://***@host:8081"},        // '/' in the password
		{"http://host:8081/path@notuser", "http://***@notuser"},       // over-redacted: never under
		{"alice:pw@host:8081", "***@host:8081"},
		{"", ""},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// New's errors for URLs url.Parse refuses do not quote the password.
	for _, u := range []string{"http://alice:pw x@host:bad", "http://alice:pw@host:notaport", "ftp://alice:pw@host"} {
		_, err := New(Config{URL: u})
		if err == nil || strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "alice") {
			t.Errorf("New(%q) = %v: want an error without the user-info", u, err)
		}
	}
}
