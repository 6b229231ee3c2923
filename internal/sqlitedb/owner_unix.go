//go:build unix

package sqlitedb

import (
	"os"
	"syscall"
)

// ownerOf returns the owner of the file at path.
func ownerOf(path string) (Owner, bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Owner{}, false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{}, false, nil
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid)}, true, nil
}
