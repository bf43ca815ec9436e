package initiator

import (
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// terminalColumns is the width of the terminal f as the kernel knows it,
// asked at each redraw so that a resized terminal is followed; $COLUMNS or
// 80 when it cannot be asked.
func terminalColumns(f *os.File) int {
	if f != nil {
		if rc, err := f.SyscallConn(); err == nil {
			var ws struct{ rows, cols, xpixels, ypixels uint16 }
			var errno syscall.Errno
			rc.Control(func(fd uintptr) {
				_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
			})
			if errno == 0 && ws.cols > 0 {
				return int(ws.cols)
			}
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}
