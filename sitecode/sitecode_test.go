package sitecode

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"B009", true}, {"TSM5", true}, {"B202", true}, {"0000", true}, {"ZZZZ", true},
		{"", false}, {"B00", false}, {"B0090", false}, {"b009", false}, {"B0 9", false},
		{"../x", false}, {"x/..", false}, {"B/09", false}, {"B\\09", false}, {"B.09", false},
		{"B\x0009", false}, {"B\n09", false}, {"Bé9", false}, {"B00Ä", false},
		{"x/../../../../etc", false}, {strings.Repeat("A", 1000), false},
	} {
		err := Check(tc.in)
		if (err == nil) != tc.ok || Valid(tc.in) != tc.ok {
			t.Errorf("Check(%q) = %v, Valid = %v; want ok=%v", tc.in, err, Valid(tc.in), tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), Rule) {
				t.Errorf("Check(%q) = %v: want ErrInvalid and the rule", tc.in, err)
			}
			if len(err.Error()) > 200 {
				t.Errorf("Check(%q): error of %d bytes; a hostile value must not flood a log", tc.in[:10], len(err.Error()))
			}
		}
	}
}
