// Package edgesign mints v1 signed image URLs for edge (hs256 and ed25519), standard library only.
package edgesign

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Key is one signing entry of EDGE_SIGNING_KEYS.
type Key struct {
	Kid      string
	Alg      string // "hs256" or "ed25519"
	Material []byte // the hs256 secret, or the 32-byte ed25519 seed
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
	message := []byte("v1\n" + path + "\n" + strconv.FormatInt(exp, 10))
	var sig []byte
	if key.Alg == "hs256" {
		mac := hmac.New(sha256.New, key.Material)
		mac.Write(message)
		sig = mac.Sum(nil)
	} else {
		sig = ed25519.Sign(ed25519.NewKeyFromSeed(key.Material), message)
	}
	url := QuotePath(path) + "?sig=" + base64.RawURLEncoding.EncodeToString(sig) + "&exp=" + strconv.FormatInt(exp, 10)
	if includeKid {
		url += "&kid=" + key.Kid
	}
	return url
}
