//go:build !linux

package querysvc

import "syscall"

// dieWithParent: only Linux has Pdeathsig; elsewhere the query process
// notices its supervisor's death by its parent process id (Orphaned).
func dieWithParent(*syscall.SysProcAttr) {}
