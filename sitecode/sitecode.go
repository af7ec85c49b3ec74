// Package sitecode owns the rule for what a GTSM site code can be, so every
// place that takes a site from outside (bottle file names, Kafka keys and
// values, metadata records, command-line flags, HTTP parameters) refuses the
// same things.
//
// The rule: exactly four characters, each an upper-case ASCII letter A-Z or a
// digit 0-9 (B009, B202, TSM5). It comes from the bottle file names, whose
// first four characters are the site (SSSSYYDDD..., see the bottle format
// reference: B20319115CH0, B0241923600CH0), and from EarthScope's station
// list, whose GTSM borehole strainmeters are four-character codes (the PBO
// Bnnn stations and the Anza TSMn ones). Lower case is refused rather than
// folded: the pipeline keys by the code as the files spell it, and "b009"
// and "B009" would otherwise be two sites.
//
// A site code is used to build file names (export, the lake) and SQL
// parameters; the rule leaves no path separator, dot, space or control
// character, so a valid code is safe as a path element.
package sitecode

import (
	"errors"
	"fmt"
)

// Len is the length of every site code.
const Len = 4

// Rule is the rule in words, for error messages and help text.
const Rule = "four upper-case letters or digits, like B009 or TSM5"

// ErrInvalid is what every Check error matches with errors.Is.
var ErrInvalid = errors.New("not a site code")

// Valid reports whether s is a site code.
func Valid(s string) bool {
	if len(s) != Len {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Check returns nil for a site code and otherwise an error that quotes s
// (escaped, and cut at 64 bytes so a hostile value cannot flood a log) and
// states the rule. It matches ErrInvalid.
func Check(s string) error {
	if Valid(s) {
		return nil
	}
	q := s
	if len(q) > 64 {
		q = q[:64] + "..."
	}
	return fmt.Errorf("%w: %q: a site code is %s", ErrInvalid, q, Rule)
}
