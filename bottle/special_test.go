package bottle

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A named pipe, or a dangling symlink, among bottle files or archives is an
// error naming it; reading must not block (a FIFO with no writer would).
func TestWalkRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"B0092118204CH0", "B001.2022001Day.tgz"} {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "B0092118205CH0")); err != nil {
		t.Fatal(err)
	}
	done := make(chan []string, 1)
	go func() {
		var errs []string
		Walk([]string{dir}, func(f *File, err error) error {
			if err != nil {
				errs = append(errs, err.Error())
			}
			return nil
		})
		done <- errs
	}()
	select {
	case errs := <-done:
		want := []string{
			"B001.2022001Day.tgz: not a regular file but a named pipe (FIFO): not read",
			"B0092118204CH0: not a regular file but a named pipe (FIFO): not read",
			"B0092118205CH0: dangling symbolic link to " + filepath.Join(dir, "gone"),
		}
		if len(errs) != len(want) {
			t.Fatalf("errors %q, want %d", errs, len(want))
		}
		for i, w := range want {
			if !strings.HasSuffix(errs[i], w) {
				t.Errorf("error %d = %q, want it to end with %q", i, errs[i], w)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Walk blocked on a special file")
	}
}
