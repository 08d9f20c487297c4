package zinit

import (
	"errors"
	"slices"
	"testing"
)

// The cases mirror the Rust shlex crate's own split tests, which is what
// zinit uses, plus the forms units use in practice.
func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil with err
		err  bool
	}{
		{in: "foo$baz", want: []string{"foo$baz"}},
		{in: "foo baz", want: []string{"foo", "baz"}},
		{in: `foo"bar"baz`, want: []string{"foobarbaz"}},
		{in: `foo "bar"baz`, want: []string{"foo", "barbaz"}},
		{in: "   foo \nbar", want: []string{"foo", "bar"}},
		{in: "foo\\\nbar", want: []string{"foobar"}},
		{in: "\"foo\\\nbar\"", want: []string{"foobar"}},
		{in: `'baz\$b'`, want: []string{`baz\$b`}},
		{in: `'baz\''`, err: true},
		{in: `\`, err: true},
		{in: `"\`, err: true},
		{in: `'\`, err: true},
		{in: `"`, err: true},
		{in: `'`, err: true},
		{in: "foo #bar\nbaz", want: []string{"foo", "baz"}},
		{in: "foo #bar", want: []string{"foo"}},
		{in: "foo#bar", want: []string{"foo#bar"}},
		{in: `foo"#bar`, err: true},
		{in: `'\n'`, want: []string{`\n`}},
		{in: `'\\n'`, want: []string{`\\n`}},
		{in: `"\$\` + "`" + `\"\\"`, want: []string{"$`\"\\"}},
		{in: `"\n"`, want: []string{`\n`}},
		{in: `foo\ bar`, want: []string{"foo bar"}},
		{in: `sh -c 'udevadm trigger && udevadm settle'`, want: []string{"sh", "-c", "udevadm trigger && udevadm settle"}},
		{in: "", want: nil},
		{in: "# only a comment", want: nil},
		{in: `''`, want: []string{""}},
	} {
		got, err := Split(tc.in)
		if tc.err {
			if !errors.Is(err, ErrQuoting) {
				t.Errorf("Split(%q) = %q, %v; want ErrQuoting", tc.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestValidSignal(t *testing.T) {
	for name, want := range map[string]bool{
		"SIGTERM": true, "sigkill": true, "SigHup": true, "SIGPWR": true, "SIGSTKFLT": true,
		"TERM": false, "15": false, "SIGIOT": false, "SIGPOLL": false, "SIGEMT": false, "": false, "SIGRTMIN": false,
	} {
		if got := ValidSignal(name); got != want {
			t.Errorf("ValidSignal(%q) = %v, want %v", name, got, want)
		}
	}
}
