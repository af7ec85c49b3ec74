package querysvc

import "syscall"

// dieWithParent makes the kernel SIGKILL the query process when the thread
// that started it ends (the supervisor's process exiting, kill -9 included).
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
