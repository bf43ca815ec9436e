package definitions

// architectures are the values a system's arch may take. A typo here would
// otherwise only show up when no worker ever matches the build.
var architectures = map[string]bool{
	"armv5l": true, "armv7l": true, "armv7lhf": true, "armv7b": true,
	"armv8l64": true, "armv8b64": true, "x86_32": true, "x86_64": true,
	"ppc64": true, "mips32l": true, "mips32b": true, "mips64l": true,
	"mips64b": true, "testarch": true,
}

// archAliases are historical spellings still found in real definitions.
var archAliases = map[string]string{"armv7": "armv7l"}

// normalizeArch returns the canonical name of arch, or false when it is not
// an architecture distbuild knows.
func normalizeArch(arch string) (string, bool) {
	if a, ok := archAliases[arch]; ok {
		arch = a
	}
	return arch, architectures[arch]
}
