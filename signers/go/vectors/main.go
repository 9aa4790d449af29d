// Test harness: EDGE_SIGNING_KEYS from the environment; stdin lines "kid<TAB>include_kid<TAB>exp<TAB>path"
// with an optional "<TAB>transform" ("w=800&fit=cover", in URL order); prints one signed URL per line,
// or "error: ..." for what the signer refuses.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"example.com/edgesign/edgesign"
)

func main() {
	keys, err := edgesign.ParseKeyring(os.Getenv("EDGE_SIGNING_KEYS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	byKid := map[string]edgesign.Key{}
	for _, key := range keys {
		byKid[key.Kid] = key
	}
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		fields := strings.SplitN(lines.Text(), "\t", 5)
		exp, _ := strconv.ParseInt(fields[2], 10, 64)
		var transform []edgesign.Param
		if len(fields) == 5 {
			for _, part := range strings.Split(fields[4], "&") {
				if name, value, _ := strings.Cut(part, "="); part != "" {
					transform = append(transform, edgesign.Param{Name: name, Value: value})
				}
			}
		}
		url, err := edgesign.SignTransformURL(fields[3], byKid[fields[0]], exp, fields[1] == "true", transform)
		if err != nil {
			url = "error: " + err.Error()
		}
		fmt.Println(url)
	}
}
