// Package edgesign mints v1 signed image URLs for edge (hs256 and ed25519), standard library only.
package edgesign

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Key is one signing entry of EDGE_SIGNING_KEYS.
type Key struct {
	Kid      string
	Alg      string // "hs256" or "ed25519"
	Material []byte // the hs256 secret, or the 32-byte ed25519 seed
}

// Param is one transform parameter as the URL shows it: {"w", "800"}; a preset is {"p:thumb", ""}.
type Param struct {
	Name, Value string
}

// transformValues accepts each transform parameter's canonical values, and nothing else.
var transformValues = map[string]func(string) bool{
	"w":         integer(1, 10000),
	"h":         integer(1, 10000),
	"fit":       oneOf("cover", "contain", "fill", "scale-down"),
	"aspect":    oneOf("original", "1:1", "4:3", "16:9", "3:2", "21:9"),
	"q":         integer(1, 100),
	"dpr":       oneOf("1", "1.5", "2", "3"),
	"crop":      oneOf("center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right", "attention", "entropy"),
	"grayscale": oneOf("true", "false"),
	"blur":      integer(0, 100),
	"sharpen":   integer(0, 100),
	"rotate":    oneOf("0", "90", "180", "270", "auto"),
	"flip":      oneOf("h", "v", "both"),
}

var preset = regexp.MustCompile(`^p:[A-Za-z0-9_-]{1,64}$`)

func integer(low, high int) func(string) bool {
	return func(value string) bool {
		n, err := strconv.Atoi(value)
		return err == nil && value == strconv.Itoa(n) && low <= n && n <= high // no sign, no leading zero
	}
}

func oneOf(values ...string) func(string) bool {
	return func(value string) bool {
		for _, ok := range values {
			if value == ok {
				return true
			}
		}
		return false
	}
}

// ParseKeyring reads "kid:alg:key,..." and returns the keys that can sign, in order.
func ParseKeyring(text string) ([]Key, error) {
	var keys []Key
	for i, entry := range strings.Split(text, ",") {
		parts := strings.Split(strings.TrimSpace(entry), ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("EDGE_SIGNING_KEYS: entry %d: expected kid:alg:key", i+1)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
		switch {
		case err != nil:
			return nil, fmt.Errorf("EDGE_SIGNING_KEYS: entry %d (kid %q): key is not base64url", i+1, parts[0])
		case parts[1] == "hs256" && len(raw) >= 32, parts[1] == "ed25519" && len(raw) == ed25519.SeedSize:
			keys = append(keys, Key{parts[0], parts[1], raw})
		case parts[1] == "ed25519-pub": // verify-only: of no use to a signer
		default:
			return nil, fmt.Errorf("EDGE_SIGNING_KEYS: entry %d (kid %q): bad alg or key length", i+1, parts[0])
		}
	}
	return keys, nil
}

// QuotePath percent-encodes a decoded path, leaving only A-Z a-z 0-9 - . _ ~ and / literal.
func QuotePath(path string) string {
	var out strings.Builder
	for i := 0; i < len(path); i++ {
		c := path[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			out.WriteByte(c)
		} else {
			fmt.Fprintf(&out, "%%%02X", c)
		}
	}
	return out.String()
}

// SignURL returns the path and query of a signed URL for a decoded path such as "/i/bob/café.png".
func SignURL(path string, key Key, exp int64, includeKid bool) string {
	url, _ := SignTransformURL(path, key, exp, includeKid, nil) // no transform: nothing to refuse
	return url
}

// SignTransformURL is SignURL for a URL with transform parameters, written in the order given:
// SignTransformURL(path, key, exp, false, []Param{{"w", "800"}, {"fit", "cover"}}). Values must be
// canonical; a name outside the contract's table, a parameter given twice or a second preset is an error.
func SignTransformURL(path string, key Key, exp int64, includeKid bool, transform []Param) (string, error) {
	var query strings.Builder
	seen := map[string]bool{}
	presets := 0
	for _, param := range transform {
		valid, known := transformValues[param.Name]
		switch {
		case known && !valid(param.Value):
			return "", fmt.Errorf("transform: %s=%q is not a canonical value", param.Name, param.Value)
		case !known && (!preset.MatchString(param.Name) || param.Value != ""):
			return "", fmt.Errorf("transform: %q is not a transform parameter, nor a preset without value", param.Name)
		case seen[param.Name]:
			return "", fmt.Errorf("transform: %s is given twice", param.Name)
		}
		seen[param.Name] = true
		if !known {
			presets++
			if presets > 1 {
				return "", fmt.Errorf("transform: more than one preset")
			}
		}
		query.WriteString(transformText(param) + "&")
	}
	message := "v1\n" + path + "\n" + strconv.FormatInt(exp, 10)
	if len(transform) > 0 { // the parameters sorted by name, in byte order
		sorted := append([]Param(nil), transform...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
		texts := make([]string, len(sorted))
		for i, param := range sorted {
			texts[i] = transformText(param)
		}
		message += "\n" + strings.Join(texts, "&")
	}
	var sig []byte
	if key.Alg == "hs256" {
		mac := hmac.New(sha256.New, key.Material)
		mac.Write([]byte(message))
		sig = mac.Sum(nil)
	} else {
		sig = ed25519.Sign(ed25519.NewKeyFromSeed(key.Material), []byte(message))
	}
	url := QuotePath(path) + "?" + query.String() + "sig=" + base64.RawURLEncoding.EncodeToString(sig) + "&exp=" + strconv.FormatInt(exp, 10)
	if includeKid {
		url += "&kid=" + key.Kid
	}
	return url, nil
}

// transformText is a checked parameter as the URL and the signed string write it: "w=800", or "p:thumb".
func transformText(param Param) string {
	if strings.HasPrefix(param.Name, "p:") {
		return param.Name
	}
	return param.Name + "=" + param.Value
}
