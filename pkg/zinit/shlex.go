package zinit

import (
	"errors"
	"strings"
)

// ErrQuoting is returned by Split for input zinit's shlex cannot split: an
// unterminated quote or a trailing backslash.
var ErrQuoting = errors.New("unbalanced quoting")

// Split splits a command line into words exactly as zinit does before it
// spawns a service (the Rust shlex crate, POSIX rules without expansion):
// blanks separate words; single quotes are literal; inside double quotes a
// backslash escapes only $ ` " \ and newline; outside quotes a backslash
// escapes any character; a # at the start of a word comments out the rest of
// the line. Nothing is expanded: $VAR, globs and operators stay literal.
func Split(s string) ([]string, error) {
	var words []string
	i := 0
	for {
		i = skipBlanksAndComments(s, i)
		if i >= len(s) {
			return words, nil
		}
		w, next, err := splitWord(s, i)
		if err != nil {
			return words, err
		}
		words = append(words, w)
		i = next
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func skipBlanksAndComments(s string, i int) int {
	for i < len(s) {
		switch {
		case isBlank(s[i]):
			i++
		case s[i] == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// splitWord reads one word starting at s[i] and returns it with the index
// just past its terminating blank.
func splitWord(s string, i int) (string, int, error) {
	var b strings.Builder
	for i < len(s) {
		c := s[i]
		i++
		switch {
		case isBlank(c):
			return b.String(), i, nil
		case c == '\'':
			end := strings.IndexByte(s[i:], '\'')
			if end < 0 {
				return "", len(s), ErrQuoting
			}
			b.WriteString(s[i : i+end])
			i += end + 1
		case c == '"':
			next, err := doubleQuoted(&b, s, i)
			if err != nil {
				return "", len(s), err
			}
			i = next
		case c == '\\':
			if i >= len(s) {
				return "", len(s), ErrQuoting
			}
			if s[i] != '\n' {
				b.WriteByte(s[i])
			}
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), i, nil
}

func doubleQuoted(b *strings.Builder, s string, i int) (int, error) {
	for i < len(s) {
		c := s[i]
		i++
		switch c {
		case '"':
			return i, nil
		case '\\':
			if i >= len(s) {
				return len(s), ErrQuoting
			}
			switch e := s[i]; e {
			case '$', '`', '"', '\\':
				b.WriteByte(e)
			case '\n':
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
			i++
		default:
			b.WriteByte(c)
		}
	}
	return len(s), ErrQuoting
}
