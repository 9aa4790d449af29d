// Test harness: EDGE_SIGNING_KEYS from the environment; stdin lines "kid<TAB>include_kid<TAB>exp<TAB>path";
// prints one signed URL per line.
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
		fields := strings.SplitN(lines.Text(), "\t", 4)
		exp, _ := strconv.ParseInt(fields[2], 10, 64)
		fmt.Println(edgesign.SignURL(fields[3], byKid[fields[0]], exp, fields[1] == "true"))
	}
}
