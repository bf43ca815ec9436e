package definitions

import "fmt"

// Error is a problem with the definitions, located in a file so the user can
// go straight to it. All errors this package returns for bad input are of
// this type (possibly wrapped), which lets callers such as the controller
// report them as the user's mistake rather than the farm's.
type Error struct {
	// File is the path of the morph (or VERSION/DEFAULTS) inside the
	// definitions tree.
	File string
	// Line is 1-based, or 0 when the problem is not at a particular line.
	Line int
	// Msg says what is wrong, naming the chunk or stratum where it helps.
	Msg string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func errorf(file string, line int, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}
