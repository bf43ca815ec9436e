package sandbox

import (
	"path/filepath"
	"strings"
)

// StagingEnv returns base with the staging area's tools, headers and
// libraries put first, for commands that run with the host's tools
// (Spec.HostTools): they must still find what their build-depends provide.
// With S the staging area, it prepends to (or sets, when absent):
//
//	PATH             S/usr/bin:S/bin
//	CPATH            S/usr/include
//	LIBRARY_PATH     S/usr/lib:S/lib
//	PKG_CONFIG_PATH  S/usr/lib/pkgconfig:S/usr/share/pkgconfig
//	LD_LIBRARY_PATH  S/usr/lib:S/lib
//
// base is not modified.
func StagingEnv(staging string, base []string) []string {
	in := func(dirs ...string) string {
		for i, d := range dirs {
			dirs[i] = filepath.Join(staging, d)
		}
		return strings.Join(dirs, ":")
	}
	env := append([]string(nil), base...)
	for _, v := range []struct{ name, dirs string }{
		{"PATH", in("usr/bin", "bin")},
		{"CPATH", in("usr/include")},
		{"LIBRARY_PATH", in("usr/lib", "lib")},
		{"PKG_CONFIG_PATH", in("usr/lib/pkgconfig", "usr/share/pkgconfig")},
		{"LD_LIBRARY_PATH", in("usr/lib", "lib")},
	} {
		env = prepend(env, v.name, v.dirs)
	}
	return env
}

// prepend puts dirs before the value of name in env, changing the last
// definition since that is the one a process gets.
func prepend(env []string, name, dirs string) []string {
	for i := len(env) - 1; i >= 0; i-- {
		if old, ok := strings.CutPrefix(env[i], name+"="); ok {
			if old != "" {
				dirs += ":" + old
			}
			env[i] = name + "=" + dirs
			return env
		}
	}
	return append(env, name+"="+dirs)
}
