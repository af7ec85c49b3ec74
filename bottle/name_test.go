package bottle

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestParseName covers every channel -> field row of the reference table.
func TestParseName(t *testing.T) {
	type want struct {
		site          string
		year, doy     int
		hour, minute  int
		session       Session
		joined        bool
		channel, fild string
	}
	cases := map[string]want{
		"B0241923600CH0":      {"B024", 2019, 236, 0, -1, Hour, false, "CH0", "ls1_t0"},
		"B0241923623CH3":      {"B024", 2019, 236, 23, -1, Hour, false, "CH3", "ls4_t0"},
		"B202190170000CH0_20": {"B202", 2019, 17, 0, 0, Min, false, "CH0", "bs1_t0"},
		"B202190172359CH3_20": {"B202", 2019, 17, 23, 59, Min, false, "CH3", "bs4_t0"},
		"B0092118205CH2_20":   {"B009", 2021, 182, 5, -1, Min, true, "CH2", "bs3_t0"},
		"B20319115CH0":        {"B203", 2019, 115, -1, -1, Day, false, "CH0", "rs1_t0"},
	}
	day := func(ch, field string) {
		cases["B00921366"+ch] = want{"B009", 2021, 366, -1, -1, Day, false, ch, field}
	}
	for c := 0; c < 4; c++ {
		g := fmt.Sprint(c + 1)
		day("CH"+fmt.Sprint(c), "rs"+g+"_t0")
		cases[fmt.Sprintf("B0092118201CH%d", c)] = want{"B009", 2021, 182, 1, -1, Hour, false, fmt.Sprintf("CH%d", c), "ls" + g + "_t0"}
		cases[fmt.Sprintf("B009211820130CH%d_20", c)] = want{"B009", 2021, 182, 1, 30, Min, false, fmt.Sprintf("CH%d", c), "bs" + g + "_t0"}
		rc := []string{"rca", "rcb", "rcc", "rcd"}[c]
		day(fmt.Sprintf("RTSettingCH%d", c), rc+"_t0")
		for gain := 0; gain < 4; gain++ {
			off, step := fmt.Sprintf("%s_t%d", rc, gain), fmt.Sprintf("%s_t%d", rc, gain+3)
			if gain == 0 {
				off, step = rc+"_t7", rc+"_t8"
			}
			day(fmt.Sprintf("CalOffsetCH%dG%d", c, gain), off)
			day(fmt.Sprintf("CalStepCH%dG%d", c, gain), step)
		}
	}
	for ch, f := range map[string]string{"BatteryVolts": "re1_t0", "SolarAmps": "reo_t0", "SystemAmps": "re2_t0",
		"DownholeDegC": "rkd_t0", "LoggerDegC": "rk1_t0", "PowerBoxDegC": "rk2_t0", "PressureKPa": "rdo_ts", "Rainfallmm": "rro_ts"} {
		day(ch, f)
	}
	// spot checks of the Cal rule against the reference text
	for name, field := range map[string]string{"B00921366CalOffsetCH0G1": "rca_t1", "B00921366CalOffsetCH3G3": "rcd_t3",
		"B00921366CalOffsetCH2G0": "rcc_t7", "B00921366CalStepCH1G1": "rcb_t4", "B00921366CalStepCH3G3": "rcd_t6", "B00921366CalStepCH0G0": "rca_t8"} {
		if cases[name].fild != field {
			t.Fatalf("table construction: %s -> %s, want %s", name, cases[name].fild, field)
		}
	}
	if len(cases) != 6+4*3+4+32+8 {
		t.Fatalf("%d cases", len(cases))
	}
	for name, w := range cases {
		n, err := ParseName(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := want{n.Site, n.Year, n.DOY, n.Hour, n.Minute, n.Session, n.Joined, n.Channel, n.Field}
		if got != w {
			t.Errorf("%s: got %+v, want %+v", name, got, w)
		}
	}
}

func TestParseNameErrors(t *testing.T) {
	cases := map[string]string{
		"":                        "too short",
		"README.md":               "too short",
		"b0092118200CH0":          "site must be",
		"B009XX18200CH0":          "year and day of year must be digits",
		"B00921000CH0":            "day of year 0 out of range",
		"B00921367CH0":            "day of year 367 out of range",
		"B0092118224CH0":          "Hour file needs hour digits",
		"B0092118200CH4":          `channel "CH4": Hour files carry only CH0..CH3`,
		"B009211820060CH0_20":     "Min file needs hour and minute digits",
		"B009211820000CH4_20":     `channel "CH4": Min files carry only CH0..CH3`,
		"B0092118224CH0_20":       "joined Min hour needs hour digits",
		"B00921182Foo":            `unknown Day channel "Foo"`,
		"B00921182CalOffsetCH4G1": `unknown Day channel "CalOffsetCH4G1"`,
		"B00921182CalStepCH0G4":   `unknown Day channel "CalStepCH0G4"`,
		"B00921182RTSettingCH4":   `unknown Day channel "RTSettingCH4"`,
		"B0092118200.tgz":         `unknown Day channel "00.tgz"`,
	}
	for name, want := range cases {
		_, err := ParseName(name)
		if err == nil {
			t.Errorf("%q: no error, want %q", name, want)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) || !strings.Contains(err.Error(), "expected SSSSYYDDD") {
			t.Errorf("%q: error %q, want the name, %q and the expected patterns", name, err, want)
		}
		if !errors.Is(err, ErrBadName) {
			t.Errorf("%q: error does not match ErrBadName", name)
		}
	}
}
