package pgwire

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ReadUsers reads a users file: one user a line, "name:verifier" (the
// verifier as ParseVerifier reads it, as `tandem proxy hash-password`
// prints it), or "name:trust" for a user let in without a password from
// loopback connections only; blank lines and lines starting with # are skipped. Every
// bad line is reported, by number, without its text (it holds a
// verifier).
func ReadUsers(r io.Reader) (Users, error) {
	users := Users{}
	var problems []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, text, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			problems = append(problems, fmt.Sprintf("line %d: want name:verifier", n))
			continue
		}
		if _, dup := users[name]; dup {
			problems = append(problems, fmt.Sprintf("line %d: user %q given twice", n, name))
			continue
		}
		if strings.TrimSpace(text) == "trust" {
			users[name] = Verifier{Trust: true}
			continue
		}
		v, err := ParseVerifier(strings.TrimSpace(text))
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: user %q: %v", n, name, err))
			continue
		}
		users[name] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("users: %s", strings.Join(problems, "; "))
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("users: no user: add a line name:verifier (tandem proxy hash-password makes the verifier)")
	}
	return users, nil
}
