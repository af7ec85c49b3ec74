package bottle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/earthscope/gtsm-stream/sitecode"
)

// Session is the recording session a bottle file belongs to, which fixes its
// sample rate and the gtsm_etl fields it fills.
type Session int

const (
	Day  Session = iota // 600 s strain, 1800/3600 s ancillary
	Hour                // 1 s strain
	Min                 // 20 sps strain
)

// Sessions lists every session in a stable order.
var Sessions = [...]Session{Day, Hour, Min}

func (s Session) String() string {
	switch s {
	case Day:
		return "Day"
	case Hour:
		return "Hour"
	case Min:
		return "Min"
	}
	return fmt.Sprintf("Session(%d)", int(s))
}

// ParseSession is the inverse of Session.String.
func ParseSession(s string) (Session, error) {
	for _, v := range Sessions {
		if strings.EqualFold(s, v.String()) {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown session %q (want Day, Hour or Min)", s)
}

// Name is what a bottle file name says about its contents.
type Name struct {
	Site    string  // four-character site id, e.g. B009
	Year    int     // full year, 20YY
	DOY     int     // day of year, 1..366
	Hour    int     // Hour and Min sessions; -1 for Day
	Minute  int     // Min session (not joined); -1 otherwise
	Session Session //
	Joined  bool    // a Min-session hour made of 60 joined minute files
	Channel string  // bottle channel: CH0, PressureKPa, CalStepCH2G3, ...
	Field   string  // gtsm_etl value field it fills: rs1_t0, rdo_ts, rca_t7, ...
}

// ancillary maps Day-session channel names to their gtsm_etl fields.
var ancillary = map[string]string{
	"BatteryVolts": "re1_t0", "SolarAmps": "reo_t0", "SystemAmps": "re2_t0",
	"DownholeDegC": "rkd_t0", "LoggerDegC": "rk1_t0", "PowerBoxDegC": "rk2_t0",
	"PressureKPa": "rdo_ts", "Rainfallmm": "rro_ts",
	"RTSettingCH0": "rca_t0", "RTSettingCH1": "rcb_t0", "RTSettingCH2": "rcc_t0", "RTSettingCH3": "rcd_t0",
}

// calFields maps Cal channel CHc to the SEED channel rca..rcd.
var calChan = [4]string{"rca", "rcb", "rcc", "rcd"}

// ErrBadName is what every ParseName error matches with errors.Is, so that a
// caller walking a folder can tell "not a bottle file" (a README, a stray
// file) from a bottle file that is damaged.
var ErrBadName = errors.New("not a bottle file name")

// nameError carries ParseName's explanation and matches ErrBadName.
type nameError struct{ msg string }

func (e nameError) Error() string        { return e.msg }
func (e nameError) Is(target error) bool { return target == ErrBadName }

// ParseName classifies a bottle file by its base name, following the rule in
// the format reference: ends in _20 and 19 long is Min; _20 and 17 long is a
// joined Min hour; 14 long with CH at [-3:-1] is Hour; anything else is Day.
func ParseName(base string) (Name, error) {
	n := Name{Hour: -1, Minute: -1}
	bad := func(why string) (Name, error) {
		return Name{}, nameError{fmt.Sprintf("bottle file name %q: %s (expected SSSSYYDDD<Channel> for Day, SSSSYYDDDHHCHn for Hour, SSSSYYDDDHHMMCHn_20 for Min, SSSSYYDDDHHCHn_20 for a joined Min hour)", base, why)}
	}
	if len(base) < 10 {
		return bad("too short")
	}
	n.Site = base[:4]
	if !sitecode.Valid(n.Site) {
		return bad("site must be " + sitecode.Rule)
	}
	yy, err1 := atoi(base[4:6])
	doy, err2 := atoi(base[6:9])
	if err1 != nil || err2 != nil {
		return bad("year and day of year must be digits at [4:9]")
	}
	if doy < 1 || doy > 366 {
		return bad(fmt.Sprintf("day of year %d out of range 1..366", doy))
	}
	n.Year, n.DOY = 2000+yy, doy
	var ch string
	switch {
	case strings.HasSuffix(base, "_20") && len(base) == 19:
		n.Session = Min
		h, e1 := atoi(base[9:11])
		m, e2 := atoi(base[11:13])
		if e1 != nil || e2 != nil || h > 23 || m > 59 {
			return bad("Min file needs hour and minute digits at [9:13]")
		}
		n.Hour, n.Minute, ch = h, m, base[13:16]
	case strings.HasSuffix(base, "_20") && len(base) == 17:
		n.Session, n.Joined = Min, true
		h, e := atoi(base[9:11])
		if e != nil || h > 23 {
			return bad("joined Min hour needs hour digits at [9:11]")
		}
		n.Hour, ch = h, base[11:14]
	case len(base) == 14 && base[11:13] == "CH":
		n.Session = Hour
		h, e := atoi(base[9:11])
		if e != nil || h > 23 {
			return bad("Hour file needs hour digits at [9:11]")
		}
		n.Hour, ch = h, base[11:14]
	default:
		n.Session, ch = Day, base[9:]
	}
	n.Channel = ch
	field, err := fieldFor(n.Session, ch)
	if err != nil {
		return bad(err.Error())
	}
	n.Field = field
	return n, nil
}

// fieldFor returns the gtsm_etl field that a channel of a session fills.
func fieldFor(s Session, ch string) (string, error) {
	if len(ch) == 3 && ch[:2] == "CH" && ch[2] >= '0' && ch[2] <= '3' {
		gauge := string(ch[2] + 1) // CH0 -> 1
		switch s {
		case Day:
			return "rs" + gauge + "_t0", nil
		case Hour:
			return "ls" + gauge + "_t0", nil
		case Min:
			return "bs" + gauge + "_t0", nil
		}
	}
	if s != Day {
		return "", fmt.Errorf("channel %q: %s files carry only CH0..CH3", ch, s)
	}
	if f, ok := ancillary[ch]; ok {
		return f, nil
	}
	// CalOffsetCHcGg -> rc?_t1..t3 (g=1..3) or rc?_t7 (g=0);
	// CalStepCHcGg   -> rc?_t4..t6 (g=1..3) or rc?_t8 (g=0).
	for prefix, base := range map[string]int{"CalOffset": 0, "CalStep": 3} {
		rest, ok := strings.CutPrefix(ch, prefix)
		if !ok || len(rest) != 5 || rest[:2] != "CH" || rest[3] != 'G' {
			continue
		}
		c, g := rest[2], rest[4]
		if c < '0' || c > '3' || g < '0' || g > '3' {
			break
		}
		t := base + int(g-'0')
		if g == '0' {
			t = 7 + base/3
		}
		return fmt.Sprintf("%s_t%d", calChan[c-'0'], t), nil
	}
	return "", fmt.Errorf("unknown Day channel %q (want CH0..CH3, BatteryVolts, SolarAmps, SystemAmps, DownholeDegC, LoggerDegC, PowerBoxDegC, PressureKPa, Rainfallmm, RTSettingCH0..3, CalOffsetCHcGg or CalStepCHcGg)", ch)
}

func atoi(s string) (int, error) {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not digits: %q", s)
		}
	}
	return strconv.Atoi(s)
}
