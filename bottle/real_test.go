package bottle

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestRealFiles parses every real bottle file and checks the facts stated in
// the folder's README.
func TestRealFiles(t *testing.T) {
	dir := testutil.RealBottleDir(t)
	files := map[string]*File{}
	err := Walk([]string{dir}, func(f *File, err error) error {
		if err != nil {
			if errors.Is(err, ErrBadName) && strings.HasSuffix(strings.SplitN(err.Error(), ":", 2)[0], "README.md") {
				return nil
			}
			t.Errorf("real file: %v", err)
			return nil
		}
		files[filepath.Base(f.Name)] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 153 {
		t.Errorf("parsed %d real files, want 153", len(files))
	}
	count := map[Session]int{}
	for name, f := range files {
		h := f.Header
		if h.BigEndian || h.HeaderSize != 40 || h.Unused != 0 || h.USGSLock != 0 || h.Missing != 999999 {
			t.Errorf("%s: header %+v, want little-endian, header_size 40, unused 0, usgs_lock 0, missing 999999", name, h)
		}
		count[f.Info.Session]++
		type want struct {
			startMs, intervalMs int64
			n                   int
			typ                 DataType
			id                  int32
		}
		var w want
		ch := f.Info.Channel
		switch {
		case f.Info.Site == "B203" && f.Info.Session == Day:
			const day = 1556150400000
			switch {
			case strings.HasPrefix(ch, "CH"):
				w = want{day, 600000, 144, Int32, 0}
			case strings.HasPrefix(ch, "RTSetting"):
				w = want{day + 1800000, 3600000, 24, Int32, 0}
			case strings.HasPrefix(ch, "CalOffset"):
				w = want{day + 1800000, 3600000, 24, Float32, 3}
			case strings.HasPrefix(ch, "CalStep"):
				w = want{day + 1800000, 3600000, 24, Float32, 2}
			default:
				ids := map[string]int32{"BatteryVolts": 4, "SolarAmps": 5, "SystemAmps": 5, "DownholeDegC": 6,
					"LoggerDegC": 6, "PowerBoxDegC": 6, "PressureKPa": 7, "Rainfallmm": 8}
				id, ok := ids[ch]
				if !ok {
					t.Errorf("%s: unexpected Day channel %s", name, ch)
				}
				w = want{day, 1800000, 48, Float32, id}
			}
		case f.Info.Site == "B024" && f.Info.Session == Hour && f.Info.Hour == 0:
			w = want{1566604800000, 1000, 3600, Int32, 0}
		case f.Info.Site == "B202" && f.Info.Session == Min && f.Info.Hour == 0:
			w = want{1547683200000 + int64(f.Info.Minute)*60000, 50, 1200, Int32, 0}
		default:
			t.Errorf("%s: not in the README's sets: %+v", name, f.Info)
			continue
		}
		got := want{h.StartMs(), h.IntervalMs(), f.Len(), h.DataType, h.ID}
		if got != w {
			t.Errorf("%s: got %+v, want %+v", name, got, w)
		}
		if h.TimeMs(f.Len()-1) != w.startMs+int64(w.n-1)*w.intervalMs {
			t.Errorf("%s: last sample time %d", name, h.TimeMs(f.Len()-1))
		}
		var missing []int
		for i := 0; i < f.Len(); i++ {
			if f.IsMissing(i) {
				missing = append(missing, i)
			}
		}
		wantMissing := "[]"
		if f.Info.Site == "B024" {
			wantMissing = "[1500 1821]"
		}
		if fmt.Sprint(missing) != wantMissing {
			t.Errorf("%s: missing samples at %v, want %s", name, missing, wantMissing)
		}
		if strings.HasPrefix(ch, "CH") {
			for i, v := range f.Ints {
				// The README's "4.1e7 to 5.7e7" is rounded: B203 CH3 reaches 57,124,328.
				if !f.IsMissing(i) && (v < 41e6 || v >= 57.5e6) {
					t.Errorf("%s[%d] = %d outside 4.1e7..5.7e7 counts", name, i, v)
				}
			}
		}
	}
	if count[Day] != 29 || count[Hour] != 4 || count[Min] != 120 {
		t.Errorf("sessions: %v, want 29 Day, 4 Hour, 120 Min", count)
	}
	if f := files["B0241923600CH0"]; f == nil || f.Ints[0] != 50778352 || f.Info.Field != "ls1_t0" {
		t.Errorf("B0241923600CH0 sample 0 / field: %+v", f)
	}
}
