package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"distbuild/internal/bytesize"
	"distbuild/internal/config"
)

// settings is a flag set with one flag of each kind the daemons use.
type settings struct {
	fs       *pflag.FlagSet
	listen   *string
	slots    *int
	lease    *time.Duration
	auth     *bool
	maxSize  bytesize.Size
	aliases  *[]string
	tags     *[]string
	workerTg *map[string]string
}

func newSettings() *settings {
	s := &settings{fs: pflag.NewFlagSet("daemon", pflag.ContinueOnError), maxSize: 50 << 30}
	s.fs.SetOutput(&strings.Builder{})
	config.Register(s.fs)
	s.listen = s.fs.String("listen", "127.0.0.1:7878", "")
	s.fs.String("state-dir", "", "")
	s.slots = s.fs.Int("slots", 1, "")
	s.lease = s.fs.Duration("worker-lease", 30*time.Second, "")
	s.auth = s.fs.Bool("require-auth", false, "")
	s.fs.Var(&s.maxSize, "max-size", "")
	s.aliases = s.fs.StringArray("repo-alias", []string{"default=x"}, "")
	s.tags = s.fs.StringArray("tag", nil, "")
	s.workerTg = s.fs.StringToString("worker-tag", nil, "")
	s.fs.Bool("version", false, "")
	return s
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "daemon.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// parse runs config.Parse with --config pointing at a file holding text.
func parse(t *testing.T, s *settings, text string, args ...string) error {
	t.Helper()
	return config.Parse(s.fs, append([]string{"--config", writeFile(t, text)}, args...))
}

func TestEveryKindOfFlagIsSetFromTheFile(t *testing.T) {
	s := newSettings()
	err := parse(t, s, `# a controller's settings
listen: 10.0.0.10:7878
slots: 8
worker-lease: 45s
require-auth: true
max-size: 512MiB
repo-alias:
  - upstream=https://git.example.com/%s
  - github=https://github.com/%s
tag: {os: debian12, kvm: "yes"}
worker-tag:
  arch: x86_64
`)
	if err != nil {
		t.Fatal(err)
	}
	if *s.listen != "10.0.0.10:7878" || *s.slots != 8 || *s.lease != 45*time.Second || !*s.auth || s.maxSize != 512<<20 {
		t.Errorf("scalars: listen %q slots %d lease %v auth %v max-size %v; want 10.0.0.10:7878, 8, 45s, true, 512MiB",
			*s.listen, *s.slots, *s.lease, *s.auth, s.maxSize)
	}
	if want := []string{"upstream=https://git.example.com/%s", "github=https://github.com/%s"}; !reflect.DeepEqual(*s.aliases, want) {
		t.Errorf("a list replaces the default and gives each item in order: got %q, want %q", *s.aliases, want)
	}
	if want := []string{"os=debian12", "kvm=yes"}; !reflect.DeepEqual(*s.tags, want) {
		t.Errorf("a mapping gives key=value items in file order: got %q, want %q", *s.tags, want)
	}
	if want := map[string]string{"arch": "x86_64"}; !reflect.DeepEqual(*s.workerTg, want) {
		t.Errorf("a mapping for a key=value map flag: got %v, want %v", *s.workerTg, want)
	}
	if !s.fs.Changed("listen") || s.fs.Changed("state-dir") {
		t.Error("a setting from the file should count as Changed, and only those the file sets")
	}
}

func TestTheCommandLineOverridesTheFile(t *testing.T) {
	s := newSettings()
	err := parse(t, s, "listen: 10.0.0.10:7878\nslots: 8\ntag: [os=debian12]\nworker-lease: not-a-duration\n",
		"--slots", "2", "--tag", "os=debian13", "--worker-lease", "1m")
	if err != nil {
		t.Fatalf("a bad value the command line overrides should not be parsed: %v", err)
	}
	if *s.slots != 2 || !reflect.DeepEqual(*s.tags, []string{"os=debian13"}) || *s.lease != time.Minute {
		t.Errorf("command line should win: slots %d tags %q lease %v; want 2, [os=debian13], 1m", *s.slots, *s.tags, *s.lease)
	}
	if *s.listen != "10.0.0.10:7878" {
		t.Errorf("a setting only the file gives should apply: listen %q", *s.listen)
	}
}

func TestMistakesNameTheFileAndLine(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"unknown key with a suggestion", "slots: 2\nlissten: 1\n", `:2: unknown setting "lissten" (did you mean "listen"?)`},
		{"unknown key far from any flag", "slots: 2\n\ncolour: blue\n", `:3: unknown setting "colour"` + "\x00"},
		{"bad int", "slots: many\n", `:1: slots: invalid value "many"`},
		{"bad duration", "worker-lease: 30\n", `:1: worker-lease: invalid value "30": must be a duration`},
		{"bad bool", "require-auth: maybe\n", `:1: require-auth: invalid value "maybe"`},
		{"bad size", "max-size: lots\n", `:1: max-size: invalid value "lots": "lots" is not a size`},
		{"bad list item", "worker-tag:\n  - arch=x86_64\n  - novalue\n", `:3: worker-tag: invalid value "novalue"`},
		{"list for a single flag", "listen:\n  - a\n  - b\n", `:2: listen: takes one string value, not a list`},
		{"mapping for a single flag", "slots: {a: 1}\n", `:1: slots: takes one int value, not a mapping`},
		{"missing value", "slots: 2\nlisten:\n", `:2: listen: has no value (write "" for an empty one)`},
		{"nested list item", "tag:\n  - [a, b]\n", `:2: tag: want a single value here, not a list`},
		{"set twice", "slots: 2\nlisten: a\nslots: 3\n", `:3: "slots" is set twice (first on line 1)`},
		{"config in the file", "config: other.yaml\n", `:1: "config" cannot be set in a config file`},
		{"version in the file", "\nversion: true\n", `:2: "version" cannot be set in a config file`},
		{"not a mapping", "- listen: a\n", `:1: want a mapping of settings`},
		{"unclosed quote", "slots: 2\nlisten: \"10.0.0.1\nrequire-auth: true\n", `:2: not valid YAML: found unexpected end of stream`},
		{"bad indentation", "slots: 2\n  listen: a\n", `:2: not valid YAML: mapping values are not allowed`},
		{"two documents", "slots: 2\n---\nlisten: a\n", `:2: a config file holds one YAML document`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSettings()
			path := writeFile(t, tc.text)
			err := config.Parse(s.fs, []string{"--config", path})
			want, exact := strings.CutSuffix(tc.want, "\x00")
			if err == nil {
				t.Fatalf("accepted %q; want an error %q", tc.text, path+want)
			}
			if got := err.Error(); !strings.HasPrefix(got, path+want) || (exact && got != path+want) {
				t.Errorf("error\n  %s\nwant it to start with\n  %s", got, path+want)
			}
		})
	}
}

func TestEmptyFilesAndAnchorsAreFine(t *testing.T) {
	for _, text := range []string{"", "# nothing set yet\n", "---\n"} {
		s := newSettings()
		if err := parse(t, s, text); err != nil || *s.slots != 1 {
			t.Errorf("%q: err %v, slots %d; want no error and the default", text, err, *s.slots)
		}
	}
	s := newSettings()
	if err := parse(t, s, "x-addr: &a 10.0.0.10:7878\n", "--slots", "1"); err == nil || !strings.Contains(err.Error(), `unknown setting "x-addr"`) {
		t.Errorf("an anchor's holder is a setting like any other; got %v", err)
	}
	s = newSettings()
	if err := parse(t, s, "tag: &tags\n  os: debian12\nworker-tag: *tags\n"); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"os": "debian12"}; !reflect.DeepEqual(*s.workerTg, want) {
		t.Errorf("an alias should give the anchored value: got %v, want %v", *s.workerTg, want)
	}
}

func TestParseWithoutConfigIsPlainParse(t *testing.T) {
	s := newSettings()
	if err := config.Parse(s.fs, []string{"--slots", "3"}); err != nil || *s.slots != 3 {
		t.Errorf("got %v, slots %d; want nil, 3", err, *s.slots)
	}
	s = newSettings()
	if err := config.Parse(s.fs, []string{"--help"}); !errors.Is(err, pflag.ErrHelp) {
		t.Errorf("--help should give pflag.ErrHelp unchanged, got %v", err)
	}
	err := config.Parse(newSettings().fs, []string{"--config", filepath.Join(t.TempDir(), "missing.yaml")})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("a missing file should be an error naming it, got %v", err)
	}
	bare := pflag.NewFlagSet("bare", pflag.ContinueOnError)
	if err := config.Parse(bare, nil); err == nil {
		t.Error("Parse on a flag set without --config should say Register is missing")
	}
}
