// Test harness for a batch of cases in one process: stdin lines of eight tab-separated fields, each
// hex-encoded (so that any byte can be tried): keyring, kid (empty: the first key), "=" and a kid to put
// on the key by hand (empty: none), include_kid ("true"), exp, align (empty: 0), path, transform
// ("w=800&fit=cover", in URL order). Prints one line per case: the signed URL, or "error: ...".
package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"example.com/edgesign/edgesign"
)

func main() {
	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for lines.Scan() {
		url, err := signCase(strings.Split(lines.Text(), "\t"))
		if err != nil {
			url = "error: " + err.Error()
		}
		fmt.Fprintln(out, url)
	}
}

func signCase(fields []string) (string, error) {
	if len(fields) != 8 {
		return "", errors.New("harness: expected 8 fields")
	}
	f := make([]string, len(fields))
	for i, field := range fields {
		raw, err := hex.DecodeString(field)
		if err != nil {
			return "", errors.New("harness: a field is not hex")
		}
		f[i] = string(raw)
	}
	keys, err := edgesign.ParseKeyring(f[0])
	if err != nil {
		return "", err
	}
	var key *edgesign.Key
	for i := range keys {
		if f[1] == "" || keys[i].Kid == f[1] {
			key = &keys[i]
			break
		}
	}
	if key == nil {
		return "", errors.New("harness: no such signing key")
	}
	if strings.HasPrefix(f[2], "=") {
		key.Kid = f[2][1:]
	}
	exp, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil { // what Go's type system refuses before any call
		return "", fmt.Errorf("exp: %q is not an int64", f[4])
	}
	var align int64
	if f[5] != "" {
		if align, err = strconv.ParseInt(f[5], 10, 64); err != nil {
			return "", fmt.Errorf("align: %q is not an int64", f[5])
		}
	}
	var transform []edgesign.Param
	for _, part := range strings.Split(f[7], "&") {
		if name, value, _ := strings.Cut(part, "="); part != "" {
			transform = append(transform, edgesign.Param{Name: name, Value: value})
		}
	}
	options := edgesign.Options{IncludeKid: f[3] == "true", Transform: transform, Align: align}
	return edgesign.Sign(f[6], *key, exp, options)
}
