package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Filter says which products of an offer file to keep.
type Filter struct {
	// Region is the regionCode to keep; "" keeps any.
	Region string
	// Keep reports whether to keep an instance type; nil keeps all.
	Keep func(typ string) bool
}

// Offer is what ParseOffer finds in an AmazonEC2 bulk offer file.
type Offer struct {
	// PublicationDate is the file's publicationDate (RFC 3339).
	PublicationDate string
	// Prices is US dollars per hour by instance type.
	Prices map[string]float64
}

type product struct {
	SKU           string            `json:"sku"`
	ProductFamily string            `json:"productFamily"`
	Attributes    map[string]string `json:"attributes"`
}

type offerTerm struct {
	PriceDimensions map[string]struct {
		Unit         string            `json:"unit"`
		PricePerUnit map[string]string `json:"pricePerUnit"`
	} `json:"priceDimensions"`
}

// linuxShared reports whether a product is an instance-hour of Linux, on
// shared tenancy, with no pre-installed software, of used capacity (not a
// capacity reservation) - the price a plain RunInstances pays - and
// returns its type.
func (p product) linuxShared(f Filter) (string, bool) {
	a := p.Attributes
	if p.ProductFamily != "Compute Instance" ||
		a["operatingSystem"] != "Linux" ||
		a["tenancy"] != "Shared" ||
		a["preInstalledSw"] != "NA" ||
		a["capacitystatus"] != "Used" ||
		a["licenseModel"] != "No License required" ||
		(a["operation"] != "" && a["operation"] != "RunInstances") {
		return "", false
	}
	if f.Region != "" && a["regionCode"] != f.Region {
		return "", false
	}
	typ := a["instanceType"]
	if typ == "" || (f.Keep != nil && !f.Keep(typ)) {
		return "", false
	}
	return typ, true
}

// ParseOffer reads an AmazonEC2 bulk offer file (products, then terms:
// OnDemand: SKU: term: priceDimensions: pricePerUnit.USD) as a stream, so
// that a file of hundreds of megabytes needs little memory, and returns
// the hourly on-demand price of each instance type that passes f. A type
// with several matching products keeps the lowest price. Malformed input
// gives an error, never a panic.
func ParseOffer(r io.Reader, f Filter) (*Offer, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	skuType := map[string]string{}
	skuPrice := map[string]float64{}
	out := &Offer{Prices: map[string]float64{}}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return nil, err
		}
		switch key {
		case "publicationDate":
			if err := dec.Decode(&out.PublicationDate); err != nil {
				return nil, fmt.Errorf("publicationDate: %w", err)
			}
		case "products":
			if err := eachEntry(dec, func(sku string) error {
				var p product
				if err := dec.Decode(&p); err != nil {
					return fmt.Errorf("product %s: %w", sku, err)
				}
				if typ, ok := p.linuxShared(f); ok {
					skuType[sku] = typ
				}
				return nil
			}); err != nil {
				return nil, fmt.Errorf("products: %w", err)
			}
		case "terms":
			if err := eachEntry(dec, func(kind string) error {
				if kind != "OnDemand" {
					return skipValue(dec)
				}
				return eachEntry(dec, func(sku string) error {
					var terms map[string]offerTerm
					if err := dec.Decode(&terms); err != nil {
						return fmt.Errorf("term of %s: %w", sku, err)
					}
					p, ok, err := hourly(terms)
					if err != nil {
						return fmt.Errorf("term of %s: %w", sku, err)
					}
					if ok {
						skuPrice[sku] = p
					}
					return nil
				})
			}); err != nil {
				return nil, fmt.Errorf("terms: %w", err)
			}
		default:
			if err := skipValue(dec); err != nil {
				return nil, err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the offer file's object")
	}
	for sku, typ := range skuType {
		p, ok := skuPrice[sku]
		if !ok {
			continue
		}
		if old, seen := out.Prices[typ]; !seen || p < old {
			out.Prices[typ] = p
		}
	}
	return out, nil
}

// hourly finds the USD price per hour among a SKU's on-demand terms.
func hourly(terms map[string]offerTerm) (float64, bool, error) {
	for _, t := range terms {
		for _, d := range t.PriceDimensions {
			if d.Unit != "Hrs" {
				continue
			}
			s, ok := d.PricePerUnit["USD"]
			if !ok {
				continue
			}
			p, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || p < 0 || math.IsInf(p, 0) || math.IsNaN(p) {
				return 0, false, fmt.Errorf("price %q is not a number of dollars", s)
			}
			if p == 0 {
				continue // placeholder products are listed at $0
			}
			return p, true, nil
		}
	}
	return 0, false, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("reading offer file: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("reading offer file: want %q, got %v", want, tok)
	}
	return nil
}

func objectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("reading offer file: %w", err)
	}
	k, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("reading offer file: want a key, got %v", tok)
	}
	return k, nil
}

// eachEntry walks an object, calling fn with each key while the decoder
// stands before its value; fn must consume the value.
func eachEntry(dec *json.Decoder, fn func(key string) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		k, err := objectKey(dec)
		if err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

// skipValue consumes one value of any size token by token, without
// holding it in memory.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("reading offer file: %w", err)
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}
