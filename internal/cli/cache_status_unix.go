//go:build unix

package cli

import (
	"errors"
	"os"
	"syscall"

	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// canWrite checks with access(2) that this user may write path (and, for a
// directory, enter it to create files).
func canWrite(path string, dir bool) error {
	mode := uint32(0x2) // W_OK
	if dir {
		mode |= 0x1 // X_OK
	}
	return syscall.Access(path, mode)
}

// fileOwner returns the numeric owner of path, or nil.
func fileOwner(path string) *sqlitedb.Owner {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &sqlitedb.Owner{UID: int(st.Uid), GID: int(st.Gid)}
}

// processRunning reports whether a process with id pid exists (EPERM: it
// does, under another user).
func processRunning(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
