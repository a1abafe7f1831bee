//! Just enough CSS to decide what a mail client shows: colours, lengths, declarations, style
//! sheets (selectors, specificity, `!important`, order, `@media`), and the computed values
//! that hide text (display, visibility, opacity, font size, clipping, off-screen positioning,
//! transforms, `mso-hide`, text colour against the effective background).
//!
//! Where we cannot evaluate something exactly (structural pseudo-classes, sibling
//! combinators, `@supports`), the rule is "uncertain": only its hiding declarations are
//! applied, so we may hide more than a mail client, never less.
//!
//! Bounded: style sheets are parsed up to `MAX_CSS_BYTES` and `MAX_RULES` selectors; a
//! selector has at most `MAX_COMPOUNDS` parts; matching one selector spends at most
//! `MATCH_BUDGET` steps (then it counts as uncertain).

use std::borrow::Cow;
use std::collections::HashMap;

/// Style sheet text evaluated per message.
pub(crate) const MAX_CSS_BYTES: usize = 1024 * 1024;
/// Selectors kept per message.
const MAX_RULES: usize = 10_000;
/// Compound selectors in one complex selector.
const MAX_COMPOUNDS: usize = 16;
/// Steps spent matching one selector against one element.
const MATCH_BUDGET: usize = 2_000;
/// Steps (candidate rules gathered plus compound tests) spent on selector matching per
/// document. Past it, every element gets the hiding declarations of every rule: hostile style
/// sheets cannot make rendering slow, only hide more.
const DOCUMENT_MATCH_BUDGET: usize = 5_000_000;
/// The viewport media queries are evaluated against: a desktop mail client.
const VIEWPORT_PX: f32 = 800.0;
/// Text with a contrast ratio below this against its background is treated as invisible
/// (#e0e0e0 on white is about 1.3; light grey footers such as #ccc on white are 1.6).
const MIN_CONTRAST: f32 = 1.3;
/// Effective opacity below this is invisible.
const MIN_OPACITY: f32 = 0.1;
/// Negative offsets (left/top/margin/text-indent) at or beyond this move text off-screen.
const OFF_SCREEN_PX: f32 = -300.0;

/// Why text is not shown. Reported by name (never with the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Reason {
    DisplayNone,
    Visibility,
    Opacity,
    FontSize,
    ZeroSize,
    MaxHeight,
    Clip,
    OffScreen,
    TextIndent,
    Transform,
    MsoHide,
    Color,
    Template,
    Svg,
    Details,
    Media,
    Comment,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::DisplayNone => "display:none",
            Reason::Visibility => "visibility:hidden",
            Reason::Opacity => "opacity",
            Reason::FontSize => "tiny font-size",
            Reason::ZeroSize => "zero size with overflow hidden",
            Reason::MaxHeight => "max-height:0",
            Reason::Clip => "clip/clip-path",
            Reason::OffScreen => "off-screen position",
            Reason::TextIndent => "negative text-indent",
            Reason::Transform => "transform scale(0)",
            Reason::MsoHide => "mso-hide:all",
            Reason::Color => "text colour matches background",
            Reason::Template => "template/head/noscript",
            Reason::Svg => "svg",
            Reason::Details => "closed details",
            Reason::Media => "media fallback",
            Reason::Comment => "HTML comment",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Colours

/// A colour with 0–255 channels and 0–1 alpha.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rgba {
    pub r: f32,
    pub g: f32,
    pub b: f32,
    pub a: f32,
}

impl Rgba {
    pub(crate) const BLACK: Rgba = Rgba { r: 0.0, g: 0.0, b: 0.0, a: 1.0 };
    pub(crate) const WHITE: Rgba = Rgba { r: 255.0, g: 255.0, b: 255.0, a: 1.0 };
    const LINK: Rgba = Rgba { r: 0.0, g: 0.0, b: 238.0, a: 1.0 };

    fn hex(v: u32) -> Rgba {
        Rgba { r: ((v >> 16) & 255) as f32, g: ((v >> 8) & 255) as f32, b: (v & 255) as f32, a: 1.0 }
    }

    /// `self` painted over the opaque colour `under`.
    fn over(self, under: Rgba) -> Rgba {
        let a = self.a.clamp(0.0, 1.0);
        Rgba { r: self.r * a + under.r * (1.0 - a), g: self.g * a + under.g * (1.0 - a), b: self.b * a + under.b * (1.0 - a), a: 1.0 }
    }

    fn luminance(self) -> f32 {
        let lin = |c: f32| {
            let c = (c / 255.0).clamp(0.0, 1.0);
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.r) + 0.7152 * lin(self.g) + 0.0722 * lin(self.b)
    }
}

/// WCAG contrast ratio of two opaque colours (1 = identical, 21 = black on white).
pub(crate) fn contrast(a: Rgba, b: Rgba) -> f32 {
    let (la, lb) = (a.luminance(), b.luminance());
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

static NAMED_COLORS: &[(&str, u32)] = &[
    ("aliceblue", 0xF0F8FF),
    ("antiquewhite", 0xFAEBD7),
    ("aqua", 0x00FFFF),
    ("aquamarine", 0x7FFFD4),
    ("azure", 0xF0FFFF),
    ("beige", 0xF5F5DC),
    ("bisque", 0xFFE4C4),
    ("black", 0x000000),
    ("blanchedalmond", 0xFFEBCD),
    ("blue", 0x0000FF),
    ("blueviolet", 0x8A2BE2),
    ("brown", 0xA52A2A),
    ("burlywood", 0xDEB887),
    ("cadetblue", 0x5F9EA0),
    ("chartreuse", 0x7FFF00),
    ("chocolate", 0xD2691E),
    ("coral", 0xFF7F50),
    ("cornflowerblue", 0x6495ED),
    ("cornsilk", 0xFFF8DC),
    ("crimson", 0xDC143C),
    ("cyan", 0x00FFFF),
    ("darkblue", 0x00008B),
    ("darkcyan", 0x008B8B),
    ("darkgoldenrod", 0xB8860B),
    ("darkgray", 0xA9A9A9),
    ("darkgreen", 0x006400),
    ("darkgrey", 0xA9A9A9),
    ("darkkhaki", 0xBDB76B),
    ("darkmagenta", 0x8B008B),
    ("darkolivegreen", 0x556B2F),
    ("darkorange", 0xFF8C00),
    ("darkorchid", 0x9932CC),
    ("darkred", 0x8B0000),
    ("darksalmon", 0xE9967A),
    ("darkseagreen", 0x8FBC8F),
    ("darkslateblue", 0x483D8B),
    ("darkslategray", 0x2F4F4F),
    ("darkslategrey", 0x2F4F4F),
    ("darkturquoise", 0x00CED1),
    ("darkviolet", 0x9400D3),
    ("deeppink", 0xFF1493),
    ("deepskyblue", 0x00BFFF),
    ("dimgray", 0x696969),
    ("dimgrey", 0x696969),
    ("dodgerblue", 0x1E90FF),
    ("firebrick", 0xB22222),
    ("floralwhite", 0xFFFAF0),
    ("forestgreen", 0x228B22),
    ("fuchsia", 0xFF00FF),
    ("gainsboro", 0xDCDCDC),
    ("ghostwhite", 0xF8F8FF),
    ("gold", 0xFFD700),
    ("goldenrod", 0xDAA520),
    ("gray", 0x808080),
    ("green", 0x008000),
    ("greenyellow", 0xADFF2F),
    ("grey", 0x808080),
    ("honeydew", 0xF0FFF0),
    ("hotpink", 0xFF69B4),
    ("indianred", 0xCD5C5C),
    ("indigo", 0x4B0082),
    ("ivory", 0xFFFFF0),
    ("khaki", 0xF0E68C),
    ("lavender", 0xE6E6FA),
    ("lavenderblush", 0xFFF0F5),
    ("lawngreen", 0x7CFC00),
    ("lemonchiffon", 0xFFFACD),
    ("lightblue", 0xADD8E6),
    ("lightcoral", 0xF08080),
    ("lightcyan", 0xE0FFFF),
    ("lightgoldenrodyellow", 0xFAFAD2),
    ("lightgray", 0xD3D3D3),
    ("lightgreen", 0x90EE90),
    ("lightgrey", 0xD3D3D3),
    ("lightpink", 0xFFB6C1),
    ("lightsalmon", 0xFFA07A),
    ("lightseagreen", 0x20B2AA),
    ("lightskyblue", 0x87CEFA),
    ("lightslategray", 0x778899),
    ("lightslategrey", 0x778899),
    ("lightsteelblue", 0xB0C4DE),
    ("lightyellow", 0xFFFFE0),
    ("lime", 0x00FF00),
    ("limegreen", 0x32CD32),
    ("linen", 0xFAF0E6),
    ("magenta", 0xFF00FF),
    ("maroon", 0x800000),
    ("mediumaquamarine", 0x66CDAA),
    ("mediumblue", 0x0000CD),
    ("mediumorchid", 0xBA55D3),
    ("mediumpurple", 0x9370DB),
    ("mediumseagreen", 0x3CB371),
    ("mediumslateblue", 0x7B68EE),
    ("mediumspringgreen", 0x00FA9A),
    ("mediumturquoise", 0x48D1CC),
    ("mediumvioletred", 0xC71585),
    ("midnightblue", 0x191970),
    ("mintcream", 0xF5FFFA),
    ("mistyrose", 0xFFE4E1),
    ("moccasin", 0xFFE4B5),
    ("navajowhite", 0xFFDEAD),
    ("navy", 0x000080),
    ("oldlace", 0xFDF5E6),
    ("olive", 0x808000),
    ("olivedrab", 0x6B8E23),
    ("orange", 0xFFA500),
    ("orangered", 0xFF4500),
    ("orchid", 0xDA70D6),
    ("palegoldenrod", 0xEEE8AA),
    ("palegreen", 0x98FB98),
    ("paleturquoise", 0xAFEEEE),
    ("palevioletred", 0xDB7093),
    ("papayawhip", 0xFFEFD5),
    ("peachpuff", 0xFFDAB9),
    ("peru", 0xCD853F),
    ("pink", 0xFFC0CB),
    ("plum", 0xDDA0DD),
    ("powderblue", 0xB0E0E6),
    ("purple", 0x800080),
    ("rebeccapurple", 0x663399),
    ("red", 0xFF0000),
    ("rosybrown", 0xBC8F8F),
    ("royalblue", 0x4169E1),
    ("saddlebrown", 0x8B4513),
    ("salmon", 0xFA8072),
    ("sandybrown", 0xF4A460),
    ("seagreen", 0x2E8B57),
    ("seashell", 0xFFF5EE),
    ("sienna", 0xA0522D),
    ("silver", 0xC0C0C0),
    ("skyblue", 0x87CEEB),
    ("slateblue", 0x6A5ACD),
    ("slategray", 0x708090),
    ("slategrey", 0x708090),
    ("snow", 0xFFFAFA),
    ("springgreen", 0x00FF7F),
    ("steelblue", 0x4682B4),
    ("tan", 0xD2B48C),
    ("teal", 0x008080),
    ("thistle", 0xD8BFD8),
    ("tomato", 0xFF6347),
    ("turquoise", 0x40E0D0),
    ("violet", 0xEE82EE),
    ("wheat", 0xF5DEB3),
    ("white", 0xFFFFFF),
    ("whitesmoke", 0xF5F5F5),
    ("yellow", 0xFFFF00),
    ("yellowgreen", 0x9ACD32),
];

fn parse_number(s: &str) -> Option<f32> {
    let v: f32 = s.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

/// A channel: "255", "50%", "none".
fn channel(s: &str, max: f32) -> Option<f32> {
    let s = s.trim();
    if s == "none" {
        return Some(0.0);
    }
    match s.strip_suffix('%') {
        Some(p) => Some(parse_number(p)? / 100.0 * max),
        None => parse_number(s),
    }
}

fn hue(s: &str) -> Option<f32> {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("deg") {
        return parse_number(v);
    }
    if let Some(v) = s.strip_suffix("grad") {
        return Some(parse_number(v)? * 0.9);
    }
    if let Some(v) = s.strip_suffix("rad") {
        return Some(parse_number(v)?.to_degrees());
    }
    if let Some(v) = s.strip_suffix("turn") {
        return Some(parse_number(v)? * 360.0);
    }
    parse_number(s)
}

fn hsl_to_rgb(h: f32, s: f32, l: f32) -> (f32, f32, f32) {
    let h = h.rem_euclid(360.0) / 360.0;
    let (s, l) = (s.clamp(0.0, 1.0), l.clamp(0.0, 1.0));
    let q = if l < 0.5 { l * (1.0 + s) } else { l + s - l * s };
    let p = 2.0 * l - q;
    let f = |mut t: f32| {
        t = t.rem_euclid(1.0);
        let v = if t < 1.0 / 6.0 {
            p + (q - p) * 6.0 * t
        } else if t < 0.5 {
            q
        } else if t < 2.0 / 3.0 {
            p + (q - p) * (2.0 / 3.0 - t) * 6.0
        } else {
            p
        };
        v * 255.0
    };
    (f(h + 1.0 / 3.0), f(h), f(h - 1.0 / 3.0))
}

/// Parses a CSS colour (lowercase input): named, `#rgb[a]`, `#rrggbb[aa]`, `rgb[a]()`,
/// `hsl[a]()` (comma or space syntax, `/ alpha`), `transparent`. `None` for anything else
/// (including `currentcolor` and `inherit`, which leave the inherited colour).
pub(crate) fn parse_color(v: &str) -> Option<Rgba> {
    let v = v.trim();
    if v == "transparent" {
        return Some(Rgba { a: 0.0, ..Rgba::BLACK });
    }
    if let Some(hex) = v.strip_prefix('#') {
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let digit = |i: usize| u32::from_str_radix(&hex[i..i + 1], 16).ok();
        let pair = |i: usize| u32::from_str_radix(&hex[i..i + 2], 16).ok();
        let (rgb, a) = match hex.len() {
            3 | 4 => {
                let (r, g, b) = (digit(0)?, digit(1)?, digit(2)?);
                let a = if hex.len() == 4 { digit(3)? * 17 } else { 255 };
                (((r * 17) << 16) | ((g * 17) << 8) | (b * 17), a)
            }
            6 | 8 => {
                let a = if hex.len() == 8 { pair(6)? } else { 255 };
                (u32::from_str_radix(&hex[..6], 16).ok()?, a)
            }
            _ => return None,
        };
        return Some(Rgba { a: a as f32 / 255.0, ..Rgba::hex(rgb) });
    }
    if let Some(open) = v.find('(') {
        let func = v[..open].trim();
        let inner = v[open + 1..].trim_end().strip_suffix(')')?;
        let (main, alpha) = match inner.split_once('/') {
            Some((m, a)) => (m, Some(a)),
            None => (inner, None),
        };
        let parts: Vec<&str> = main.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()).collect();
        let (c3, alpha) = match (parts.len(), alpha) {
            (3, a) => (&parts[..3], a),
            (4, None) => (&parts[..3], Some(parts[3])),
            _ => return None,
        };
        let a = match alpha {
            Some(a) => channel(a, 1.0)?.clamp(0.0, 1.0),
            None => 1.0,
        };
        return match func {
            "rgb" | "rgba" => Some(Rgba { r: channel(c3[0], 255.0)?, g: channel(c3[1], 255.0)?, b: channel(c3[2], 255.0)?, a }),
            "hsl" | "hsla" => {
                // Saturation and lightness: "50%", or plain numbers meaning percent.
                let pct = |s: &str| if s.ends_with('%') { channel(s, 1.0) } else { parse_number(s).map(|n| n / 100.0) };
                let (r, g, b) = hsl_to_rgb(hue(c3[0])?, pct(c3[1])?, pct(c3[2])?);
                Some(Rgba { r, g, b, a })
            }
            _ => None,
        };
    }
    NAMED_COLORS.binary_search_by(|(n, _)| n.cmp(&v)).ok().map(|i| Rgba::hex(NAMED_COLORS[i].1))
}

// ---------------------------------------------------------------------------------------------
// Lengths

/// A length in px; `em`/`%` relative to `font_px`, `rem` to 16px, viewport units to the
/// nominal viewport. `None` for `auto` and anything unparsable.
pub(crate) fn parse_length(v: &str, font_px: f32) -> Option<f32> {
    let v = v.trim();
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n = parse_number(num)?;
    let px = match unit.trim() {
        "" | "px" => n,
        "pt" => n * 4.0 / 3.0,
        "pc" => n * 16.0,
        "%" => n / 100.0 * font_px,
        "em" => n * font_px,
        "rem" => n * 16.0,
        "ex" | "ch" => n * font_px / 2.0,
        "vw" | "vh" | "vmin" | "vmax" => n / 100.0 * VIEWPORT_PX,
        "cm" => n * 96.0 / 2.54,
        "mm" => n * 96.0 / 25.4,
        "q" => n * 96.0 / 101.6,
        "in" => n * 96.0,
        _ => return None,
    };
    px.is_finite().then_some(px)
}

fn is_zero_length(v: &str) -> bool {
    parse_length(v, 16.0).is_some_and(|px| px.abs() < 0.5)
}

// ---------------------------------------------------------------------------------------------
// Declarations

/// The properties that decide visibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prop {
    Display,
    Visibility,
    Opacity,
    FontSize,
    LineHeight,
    Width,
    Height,
    MaxHeight,
    MaxWidth,
    Overflow,
    Clip,
    ClipPath,
    Position,
    Left,
    Top,
    MarginLeft,
    MarginTop,
    TextIndent,
    Transform,
    Scale,
    MsoHide,
    Color,
    BgColor,
    BgImage,
    Content,
}

/// One declaration: a property and its (lowercased, unescaped) value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decl {
    pub prop: Prop,
    pub value: String,
    pub important: bool,
}

fn prop_of(name: &str) -> Option<Prop> {
    Some(match name {
        "display" => Prop::Display,
        "visibility" => Prop::Visibility,
        "opacity" | "-moz-opacity" | "filter" => Prop::Opacity,
        "font-size" => Prop::FontSize,
        "line-height" => Prop::LineHeight,
        "width" => Prop::Width,
        "height" => Prop::Height,
        "max-height" => Prop::MaxHeight,
        "max-width" => Prop::MaxWidth,
        "overflow" | "overflow-x" | "overflow-y" => Prop::Overflow,
        "clip" => Prop::Clip,
        "clip-path" | "-webkit-clip-path" => Prop::ClipPath,
        "position" => Prop::Position,
        "left" => Prop::Left,
        "top" => Prop::Top,
        "margin-left" => Prop::MarginLeft,
        "margin-top" => Prop::MarginTop,
        "text-indent" => Prop::TextIndent,
        "transform" | "-webkit-transform" | "-ms-transform" | "-moz-transform" => Prop::Transform,
        "scale" => Prop::Scale,
        "mso-hide" => Prop::MsoHide,
        "color" | "-webkit-text-fill-color" => Prop::Color,
        "background-color" => Prop::BgColor,
        "background-image" => Prop::BgImage,
        "content" => Prop::Content,
        _ => return None,
    })
}

/// Removes `/* comments */`.
fn strip_comments(css: &str) -> Cow<'_, str> {
    if !css.contains("/*") {
        return Cow::Borrowed(css);
    }
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        out.push(' ');
        rest = rest[start + 2..].find("*/").map_or("", |e| &rest[start + 2 + e + 2..]);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Decodes CSS escapes (`\64 isplay`, `\:`) so they cannot disguise a property or keyword.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut hex = String::new();
        while hex.len() < 6 && chars.peek().is_some_and(char::is_ascii_hexdigit) {
            hex.extend(chars.next());
        }
        if hex.is_empty() {
            match chars.next() {
                Some('\n') | None => {}
                Some(other) => out.push(other),
            }
        } else {
            if chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                chars.next();
            }
            let v = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
            out.push(char::from_u32(v).filter(|&c| c != '\0').unwrap_or('\u{FFFD}'));
        }
    }
    Cow::Owned(out)
}

/// Splits at `sep` outside quotes and parentheses.
fn split_top(s: &str, sep: u8) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, 0u8, 0);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if quote != 0 {
            if c == b'\\' {
                i += 1;
            } else if c == quote {
                quote = 0;
            }
        } else {
            match c {
                b'"' | b'\'' => quote = c,
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth = depth.saturating_sub(1),
                b'\\' => i += 1,
                c if c == sep && depth == 0 => {
                    out.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push(&s[start.min(s.len())..]);
    out
}

/// Parses a declaration list (an inline `style` attribute or a rule body).
pub(crate) fn parse_declarations(css: &str) -> Vec<Decl> {
    let css = strip_comments(css);
    let mut out = Vec::new();
    for decl in split_top(&css, b';') {
        let Some((name, value)) = decl.split_once(':') else { continue };
        let name = unescape(name.trim()).to_ascii_lowercase();
        let mut value = unescape(value.trim()).to_ascii_lowercase();
        let mut important = false;
        if let Some(bang) = value.rfind('!') {
            if value[bang + 1..].trim() == "important" {
                important = true;
                value.truncate(bang);
            }
        }
        let value = value.trim().to_owned();
        let mut push = |prop: Prop, value: String| out.push(Decl { prop, value, important });
        match name.as_str() {
            "background" => {
                let image = value.contains("url(") || value.contains("gradient(");
                push(Prop::BgImage, if image { "image".to_owned() } else { "none".to_owned() });
                let color = split_top(&value, b' ').into_iter().rev().find_map(|t| parse_color(t).map(|_| t.to_owned()));
                push(Prop::BgColor, color.unwrap_or_else(|| "transparent".to_owned()));
            }
            "font" => {
                // font: [style] [weight] size[/line-height] family
                for token in value.split_whitespace() {
                    let (size, lh) = token.split_once('/').map_or((token, None), |(s, l)| (s, Some(l)));
                    if size.starts_with(|c: char| c.is_ascii_digit() || c == '.') && parse_length(size, 16.0).is_some() {
                        push(Prop::FontSize, size.to_owned());
                        if let Some(lh) = lh {
                            push(Prop::LineHeight, lh.to_owned());
                        }
                        break;
                    }
                }
            }
            "inset" => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if let Some(top) = parts.first() {
                    push(Prop::Top, (*top).to_owned());
                    push(Prop::Left, parts.get(3).or(parts.get(1)).unwrap_or(top).to_string());
                }
            }
            "margin" => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if let Some(top) = parts.first() {
                    push(Prop::MarginTop, (*top).to_owned());
                    push(Prop::MarginLeft, parts.get(3).or(parts.get(1)).unwrap_or(top).to_string());
                }
            }
            n => {
                if let Some(prop) = prop_of(n) {
                    if n == "filter" && !value.contains("opacity(") {
                        continue;
                    }
                    push(prop, value);
                }
            }
        }
    }
    out
}

/// Where a declaration comes from, lowest priority first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Origin {
    /// The browser's default style sheet and HTML presentational attributes.
    Presentational,
    Sheet,
    Inline,
}

/// Cascade priority: `!important`, then origin, then specificity, then order.
type Priority = (bool, Origin, u32, u32);

/// The winning declared values of one element, before inheritance.
#[derive(Clone, Debug, Default)]
pub(crate) struct Declared {
    values: Vec<(Prop, Priority, String, bool)>,
}

impl Declared {
    /// Adds a declaration; `certain` is false for uncertain rule matches, which may only hide.
    pub(crate) fn add(&mut self, d: &Decl, origin: Origin, specificity: u32, order: u32, certain: bool) {
        if !certain && !hides(d) {
            return;
        }
        let prio = (d.important, origin, specificity, order);
        match self.values.iter_mut().find(|(p, ..)| *p == d.prop) {
            Some(slot) => {
                if prio >= slot.1 {
                    *slot = (d.prop, prio, d.value.clone(), certain);
                }
            }
            None => self.values.push((d.prop, prio, d.value.clone(), certain)),
        }
    }

    pub(crate) fn presentational(&mut self, prop: Prop, value: &str) {
        self.add(&Decl { prop, value: value.to_owned(), important: false }, Origin::Presentational, 0, 0, true);
    }

    fn get(&self, prop: Prop) -> Option<&str> {
        self.values.iter().find(|(p, ..)| *p == prop).map(|(_, _, v, _)| v.as_str())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Whether a declaration on its own can hide text (so it is safe to apply when unsure).
fn hides(d: &Decl) -> bool {
    let v = d.value.as_str();
    match d.prop {
        Prop::Display => v.starts_with("none"),
        Prop::Visibility => v == "hidden" || v == "collapse",
        Prop::Opacity => opacity_value(v).is_some_and(|o| o < MIN_OPACITY),
        Prop::FontSize | Prop::LineHeight | Prop::Width | Prop::Height | Prop::MaxHeight | Prop::MaxWidth => is_zero_length(v),
        Prop::Overflow => v.contains("hidden") || v.contains("clip"),
        Prop::Clip | Prop::ClipPath | Prop::Transform | Prop::Scale => true,
        Prop::Position => v == "absolute" || v == "fixed",
        Prop::Left | Prop::Top | Prop::MarginLeft | Prop::MarginTop | Prop::TextIndent => {
            parse_length(v, 16.0).is_some_and(|px| px <= OFF_SCREEN_PX) || v.starts_with("-100%")
        }
        Prop::MsoHide => v == "all",
        Prop::Color | Prop::BgColor | Prop::BgImage | Prop::Content => false,
    }
}

fn opacity_value(v: &str) -> Option<f32> {
    let v = v.trim();
    let v = v.strip_prefix("alpha(opacity=").map_or(v, |r| r.trim_end_matches(')'));
    let v = v.strip_prefix("opacity(").map_or(v, |r| r.trim_end_matches(')'));
    match v.strip_suffix('%') {
        Some(p) => parse_number(p).map(|n| n / 100.0),
        None => parse_number(v).map(|n| if n > 1.0 { n / 100.0 } else { n }),
    }
}

/// Whether a clip/clip-path value clips everything away.
fn clips_all(prop: Prop, v: &str) -> bool {
    let inner = |f: &str| v.find(f).map(|i| v[i + f.len()..].trim_end_matches(')').trim());
    if prop == Prop::Clip {
        return inner("rect(").is_some_and(|args| {
            let nums: Vec<f32> = args.split([',', ' ']).filter(|s| !s.is_empty()).filter_map(|s| parse_length(s, 16.0)).collect();
            nums.len() == 4 && (nums[2] - nums[0]).abs() <= 1.0 || nums.len() == 4 && (nums[1] - nums[3]).abs() <= 1.0
        });
    }
    if let Some(args) = inner("inset(") {
        let first = args.split_whitespace().next().unwrap_or("");
        return first.strip_suffix('%').and_then(parse_number).is_some_and(|p| p >= 50.0);
    }
    if let Some(args) = inner("circle(").or_else(|| inner("ellipse(")) {
        let first = args.split_whitespace().next().unwrap_or("");
        return is_zero_length(first) || first.strip_suffix('%').and_then(parse_number).is_some_and(|p| p <= 0.0);
    }
    if let Some(args) = inner("polygon(") {
        return args.split([',', ' ']).filter(|s| !s.is_empty()).all(is_zero_length);
    }
    false
}

/// Whether a transform (or `scale`) value scales to nothing.
fn scales_to_zero(v: &str) -> bool {
    if v.trim() == "0" || v.trim().starts_with("0 ") {
        return true;
    }
    let mut rest = v;
    while let Some(i) = rest.find("scale") {
        let after = &rest[i + 5..];
        let open = after.find('(').unwrap_or(after.len());
        let args_end = after.find(')').unwrap_or(after.len());
        if open < args_end {
            let args = &after[open + 1..args_end];
            if args.split([',', ' ']).filter(|s| !s.is_empty()).any(|a| parse_number(a).is_some_and(|n| n.abs() < 0.01)) {
                return true;
            }
        }
        rest = &after[args_end.min(after.len())..];
    }
    if let Some(i) = v.find("matrix(") {
        let args: Vec<f32> = v[i + 7..].trim_end_matches(')').split(',').filter_map(parse_number).collect();
        if args.len() == 6 && args[0].abs() < 0.01 && args[1].abs() < 0.01
            || args.len() == 6 && args[2].abs() < 0.01 && args[3].abs() < 0.01
        {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Computed style

/// Background under the text: a known opaque colour or something we cannot see (an image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Background {
    Color(Rgba),
    Unknown,
}

/// Inherited state for one element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Computed {
    /// The whole subtree is hidden (not undone by descendants).
    pub hide: Option<Reason>,
    pub visibility_hidden: bool,
    pub opacity: f32,
    pub font_px: f32,
    pub color: Rgba,
    pub background: Background,
    /// `text-indent` inherits; far negative pushes the text off-screen.
    pub indent_hidden: bool,
    /// The text colour is (nearly) the background colour; recomputed only when either changes.
    pub low_contrast: bool,
}

impl Computed {
    pub(crate) fn root() -> Computed {
        Computed {
            hide: None,
            visibility_hidden: false,
            opacity: 1.0,
            font_px: 16.0,
            color: Rgba::BLACK,
            background: Background::Color(Rgba::WHITE),
            indent_hidden: false,
            low_contrast: false,
        }
    }

    /// Why text directly in this element is not visible, if it is not.
    pub(crate) fn text_hidden(&self) -> Option<Reason> {
        if let Some(r) = self.hide {
            return Some(r);
        }
        if self.visibility_hidden {
            return Some(Reason::Visibility);
        }
        if self.opacity < MIN_OPACITY {
            return Some(Reason::Opacity);
        }
        if self.font_px <= 1.0 {
            return Some(Reason::FontSize);
        }
        if self.indent_hidden {
            return Some(Reason::TextIndent);
        }
        if self.low_contrast {
            return Some(Reason::Color);
        }
        None
    }

    /// The computed style of a child with declarations `d`. `link` applies the browser's
    /// default link colour (links do not inherit the text colour).
    pub(crate) fn child(&self, d: &Declared, link: bool) -> Computed {
        let mut c = *self;
        if d.is_empty() && !link {
            return c;
        }
        let get = |p: Prop| d.get(p);
        let (old_color, old_background) = (c.color, c.background);
        if get(Prop::Display).is_some_and(|v| v.starts_with("none")) {
            c.hide.get_or_insert(Reason::DisplayNone);
        }
        match get(Prop::Visibility) {
            Some("hidden" | "collapse") => c.visibility_hidden = true,
            Some("visible") => c.visibility_hidden = false,
            _ => {}
        }
        if let Some(o) = get(Prop::Opacity).and_then(opacity_value) {
            c.opacity *= o.clamp(0.0, 1.0);
        }
        if let Some(v) = get(Prop::FontSize) {
            c.font_px = font_size(v, self.font_px).unwrap_or(c.font_px);
        }
        let overflow_hidden = get(Prop::Overflow).is_some_and(|v| v.contains("hidden") || v.contains("clip"));
        let zero = |p: Prop| get(p).is_some_and(is_zero_length);
        if overflow_hidden && (zero(Prop::Width) || zero(Prop::Height) || zero(Prop::LineHeight) || zero(Prop::MaxWidth)) {
            c.hide.get_or_insert(Reason::ZeroSize);
        }
        if zero(Prop::MaxHeight) {
            c.hide.get_or_insert(Reason::MaxHeight);
        }
        if get(Prop::Clip).is_some_and(|v| clips_all(Prop::Clip, v)) || get(Prop::ClipPath).is_some_and(|v| clips_all(Prop::ClipPath, v)) {
            c.hide.get_or_insert(Reason::Clip);
        }
        let far =
            |p: Prop| get(p).is_some_and(|v| parse_length(v, c.font_px).is_some_and(|px| px <= OFF_SCREEN_PX) || v.starts_with("-100%"));
        let positioned = get(Prop::Position).is_some_and(|v| v == "absolute" || v == "fixed");
        if (positioned && (far(Prop::Left) || far(Prop::Top))) || far(Prop::MarginLeft) || far(Prop::MarginTop) {
            c.hide.get_or_insert(Reason::OffScreen);
        }
        if let Some(v) = get(Prop::TextIndent) {
            c.indent_hidden = parse_length(v, c.font_px).is_some_and(|px| px <= OFF_SCREEN_PX) || v.starts_with("-100%");
        }
        if get(Prop::Transform).is_some_and(scales_to_zero) || get(Prop::Scale).is_some_and(scales_to_zero) {
            c.hide.get_or_insert(Reason::Transform);
        }
        if get(Prop::MsoHide) == Some("all") {
            c.hide.get_or_insert(Reason::MsoHide);
        }
        match get(Prop::Color).and_then(parse_color) {
            Some(color) => c.color = color,
            None if link => c.color = Rgba::LINK,
            None => {}
        }
        let image = get(Prop::BgImage).is_some_and(|v| v != "none");
        let bg_color = get(Prop::BgColor).and_then(parse_color);
        if image {
            c.background = Background::Unknown;
        } else if let Some(bg) = bg_color.filter(|b| b.a > 0.0) {
            c.background = match (c.background, bg.a >= 0.99) {
                (_, true) => Background::Color(Rgba { a: 1.0, ..bg }),
                (Background::Color(under), false) => Background::Color(bg.over(under)),
                (Background::Unknown, false) => Background::Unknown,
            };
        }
        if c.color != old_color || c.background != old_background {
            c.low_contrast = match c.background {
                Background::Color(bg) => contrast(c.color.over(bg), bg) < MIN_CONTRAST,
                Background::Unknown => false,
            };
        }
        c
    }
}

fn font_size(v: &str, parent: f32) -> Option<f32> {
    Some(match v.trim() {
        "xx-small" => 9.0,
        "x-small" => 10.0,
        "small" => 13.0,
        "medium" => 16.0,
        "large" => 18.0,
        "x-large" => 24.0,
        "xx-large" => 32.0,
        "xxx-large" => 48.0,
        "smaller" => parent * 0.83,
        "larger" => parent * 1.2,
        v => parse_length(v, parent)?.max(0.0),
    })
}

// ---------------------------------------------------------------------------------------------
// Selectors

/// An element as selectors see it.
pub(crate) trait Element {
    fn name(&self) -> &str;
    fn attr(&self, name: &str) -> Option<&str>;
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum AttrOp {
    Exists,
    Equals,
    Includes,
    DashMatch,
    Prefix,
    Suffix,
    Substring,
}

#[derive(Clone, Debug, PartialEq)]
struct AttrSel {
    name: String,
    op: AttrOp,
    value: String,
    ignore_case: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Compound {
    tag: Option<String>,
    id: Option<String>,
    classes: Vec<String>,
    attrs: Vec<AttrSel>,
    /// A pseudo-class we cannot evaluate (structural, `:not()`, …): "maybe".
    uncertain: bool,
    /// A dynamic pseudo-class (`:hover`, `:focus`, …): never matches as first shown.
    never: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Combinator {
    Descendant,
    Child,
    /// `+` and `~`: siblings are not tracked, so the left side is "maybe".
    Sibling,
}

#[derive(Clone, Debug, PartialEq)]
struct Selector {
    /// Left to right.
    compounds: Vec<Compound>,
    /// `combinators[i]` joins `compounds[i]` and `compounds[i + 1]`.
    combinators: Vec<Combinator>,
    specificity: u32,
}

/// The result of matching when some parts cannot be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tri {
    No,
    Maybe,
    Yes,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '_' || c == '\\' || !c.is_ascii()
}

fn read_ident(s: &str) -> (&str, &str) {
    let end = s.char_indices().find(|&(_, c)| !is_ident_char(c)).map_or(s.len(), |(i, _)| i);
    (&s[..end], &s[end..])
}

/// Parses one complex selector. `None` if invalid (which invalidates its whole rule) or if it
/// selects a pseudo-element (`Some(Err(()))` marks those, for generated content).
fn parse_selector(s: &str) -> Option<Result<Selector, ()>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut compounds = vec![Compound::default()];
    let mut combinators = Vec::new();
    let (mut ids, mut classes, mut types) = (0u32, 0u32, 0u32);
    let mut pseudo_element = false;
    let mut rest = s;
    let mut fresh = true;
    while !rest.is_empty() {
        let c = rest.chars().next()?;
        if c.is_whitespace() || c == '>' || c == '+' || c == '~' {
            let trimmed = rest.trim_start();
            let (comb, after) = match trimmed.chars().next() {
                Some('>') => (Combinator::Child, &trimmed[1..]),
                Some('+') | Some('~') => (Combinator::Sibling, &trimmed[1..]),
                _ => (Combinator::Descendant, trimmed),
            };
            if after.trim().is_empty() {
                if comb == Combinator::Descendant {
                    break;
                }
                return None;
            }
            if fresh {
                return None;
            }
            if compounds.len() >= MAX_COMPOUNDS {
                return None;
            }
            combinators.push(comb);
            compounds.push(Compound::default());
            rest = after.trim_start();
            fresh = true;
            continue;
        }
        let cur = compounds.last_mut()?;
        match c {
            '*' => {
                rest = &rest[1..];
            }
            '#' => {
                let (id, r) = read_ident(&rest[1..]);
                if id.is_empty() {
                    return None;
                }
                cur.id = Some(unescape(id).into_owned());
                ids += 1;
                rest = r;
            }
            '.' => {
                let (class, r) = read_ident(&rest[1..]);
                if class.is_empty() {
                    return None;
                }
                cur.classes.push(unescape(class).into_owned());
                classes += 1;
                rest = r;
            }
            '[' => {
                let close = rest.find(']')?;
                let inner = rest[1..close].trim();
                rest = &rest[close + 1..];
                classes += 1;
                let ops = [
                    ("~=", AttrOp::Includes),
                    ("|=", AttrOp::DashMatch),
                    ("^=", AttrOp::Prefix),
                    ("$=", AttrOp::Suffix),
                    ("*=", AttrOp::Substring),
                    ("=", AttrOp::Equals),
                ];
                let found = ops
                    .iter()
                    .filter_map(|(tok, op)| inner.find(tok).map(|i| (i, *tok, *op)))
                    .min_by_key(|(i, t, _)| (*i, usize::MAX - t.len()));
                let sel = match found {
                    None => AttrSel { name: inner.to_ascii_lowercase(), op: AttrOp::Exists, value: String::new(), ignore_case: false },
                    Some((i, tok, op)) => {
                        let name = inner[..i].trim().to_ascii_lowercase();
                        let mut value = inner[i + tok.len()..].trim();
                        let mut ignore_case = false;
                        if let Some(v) = value.strip_suffix(" i").or_else(|| value.strip_suffix(" I")) {
                            value = v.trim_end();
                            ignore_case = true;
                        }
                        let value = value.trim_matches(|c| c == '"' || c == '\'');
                        AttrSel { name, op, value: unescape(value).into_owned(), ignore_case }
                    }
                };
                if sel.name.is_empty() {
                    return None;
                }
                cur.attrs.push(sel);
            }
            ':' => {
                let double = rest[1..].starts_with(':');
                let (name, mut r) = read_ident(&rest[if double { 2 } else { 1 }..]);
                let name = name.to_ascii_lowercase();
                if r.starts_with('(') {
                    // Skip the (possibly nested) argument.
                    let mut depth = 0usize;
                    let mut end = r.len();
                    for (i, ch) in r.char_indices() {
                        match ch {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = i + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    r = &r[end..];
                }
                rest = r;
                match name.as_str() {
                    "before" | "after" | "first-line" | "first-letter" | "marker" | "placeholder" | "selection" => {
                        pseudo_element = true;
                        types += 1;
                    }
                    "hover" | "active" | "focus" | "focus-within" | "focus-visible" | "visited" | "target" | "checked" => {
                        cur.never = true;
                        classes += 1;
                    }
                    "link" | "any-link" | "root" | "is" | "where" => {
                        if name == "is" || name == "where" {
                            cur.uncertain = true;
                        }
                        classes += 1;
                    }
                    _ => {
                        cur.uncertain = true;
                        classes += 1;
                    }
                }
            }
            c if is_ident_char(c) => {
                let (tag, r) = read_ident(rest);
                cur.tag = Some(unescape(tag).to_ascii_lowercase());
                types += 1;
                rest = r;
            }
            _ => return None,
        }
        fresh = false;
    }
    if fresh && compounds.len() > 1 {
        return None;
    }
    if pseudo_element {
        return Some(Err(()));
    }
    let specificity = ids.min(255) << 16 | classes.min(255) << 8 | types.min(255);
    Some(Ok(Selector { compounds, combinators, specificity }))
}

fn compound_matches(c: &Compound, el: &dyn Element) -> Tri {
    if c.never {
        return Tri::No;
    }
    if let Some(tag) = &c.tag {
        if tag != el.name() {
            return Tri::No;
        }
    }
    if let Some(id) = &c.id {
        if el.attr("id") != Some(id.as_str()) {
            return Tri::No;
        }
    }
    if !c.classes.is_empty() {
        let list = el.attr("class").unwrap_or("");
        if !c.classes.iter().all(|want| list.split_ascii_whitespace().any(|have| have == want)) {
            return Tri::No;
        }
    }
    for a in &c.attrs {
        let Some(have) = el.attr(&a.name) else { return Tri::No };
        let (have, want): (Cow<'_, str>, Cow<'_, str>) = if a.ignore_case {
            (Cow::Owned(have.to_lowercase()), Cow::Owned(a.value.to_lowercase()))
        } else {
            (Cow::Borrowed(have), Cow::Borrowed(a.value.as_str()))
        };
        let ok = match a.op {
            AttrOp::Exists => true,
            AttrOp::Equals => have == want,
            AttrOp::Includes => have.split_ascii_whitespace().any(|w| w == want),
            AttrOp::DashMatch => have == want || have.starts_with(&format!("{want}-")),
            AttrOp::Prefix => !want.is_empty() && have.starts_with(want.as_ref()),
            AttrOp::Suffix => !want.is_empty() && have.ends_with(want.as_ref()),
            AttrOp::Substring => !want.is_empty() && have.contains(want.as_ref()),
        };
        if !ok {
            return Tri::No;
        }
    }
    if c.uncertain {
        Tri::Maybe
    } else {
        Tri::Yes
    }
}

/// Matches `compounds[..=ci]` with `compounds[ci]` at `els[at]` (`els[0]` is the element,
/// then its ancestors).
fn match_at(sel: &Selector, ci: usize, els: &[&dyn Element], at: usize, budget: &mut usize) -> Tri {
    if *budget == 0 {
        return Tri::Maybe;
    }
    *budget -= 1;
    let here = compound_matches(&sel.compounds[ci], els[at]);
    if here == Tri::No || ci == 0 {
        return here;
    }
    let rest = match sel.combinators[ci - 1] {
        Combinator::Child => {
            if at + 1 < els.len() {
                match_at(sel, ci - 1, els, at + 1, budget)
            } else {
                Tri::No
            }
        }
        Combinator::Descendant => {
            let mut best = Tri::No;
            for up in at + 1..els.len() {
                let r = match_at(sel, ci - 1, els, up, budget);
                best = best.max(r);
                if best == Tri::Yes || *budget == 0 {
                    break;
                }
            }
            if *budget == 0 && best == Tri::No {
                Tri::Maybe
            } else {
                best
            }
        }
        // We do not track siblings; whether the left side matches is unknown, unless nothing
        // could ever match it.
        Combinator::Sibling => Tri::Maybe,
    };
    here.min(rest)
}

// ---------------------------------------------------------------------------------------------
// Style sheets

#[derive(Debug)]
struct Rule {
    selector: Selector,
    order: u32,
    /// Index into `Stylesheet::blocks`.
    block: usize,
    /// From an `@supports` block or similar: apply hiding declarations only.
    certain: bool,
}

/// The parsed `<style>` blocks of one document, indexed by the key of each selector's last
/// compound (id, then class, then tag name).
#[derive(Debug, Default)]
pub(crate) struct Stylesheet {
    rules: Vec<Rule>,
    blocks: Vec<Vec<Decl>>,
    by_id: HashMap<String, Vec<usize>>,
    by_class: HashMap<String, Vec<usize>>,
    by_tag: HashMap<String, Vec<usize>>,
    universal: Vec<usize>,
    /// `::before`/`::after` rules whose `content` is text a human sees and we do not deliver.
    pub generated_content: usize,
    /// Bytes of style sheet text we could not evaluate (over `MAX_CSS_BYTES` or `MAX_RULES`).
    pub skipped_bytes: usize,
    parsed_bytes: usize,
    /// Matching steps spent in this document.
    spent: std::cell::Cell<usize>,
    /// The hiding declarations of all rules, used once the budget is spent.
    overload: std::cell::OnceCell<Declared>,
}

impl Stylesheet {
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the matching budget ran out (every element then gets all hiding declarations).
    pub(crate) fn overloaded(&self) -> bool {
        self.spent.get() >= DOCUMENT_MATCH_BUDGET
    }

    /// Adds the content of one `<style>` element.
    pub(crate) fn add(&mut self, css: &str, media_attr: Option<&str>) {
        if self.parsed_bytes + css.len() > MAX_CSS_BYTES {
            self.skipped_bytes += css.len();
            return;
        }
        self.parsed_bytes += css.len();
        if media_attr.is_some_and(|m| !media_matches(&m.to_ascii_lowercase())) {
            return;
        }
        let css = strip_comments(css);
        self.parse_block(&css, true);
    }

    fn parse_block(&mut self, css: &str, certain: bool) {
        let b = css.as_bytes();
        let mut i = 0;
        while i < b.len() {
            // Prelude: up to `{` or `;` (a statement at-rule such as @import).
            let mut j = i;
            let mut quote = 0u8;
            while j < b.len() {
                let c = b[j];
                if quote != 0 {
                    if c == b'\\' {
                        j += 1;
                    } else if c == quote {
                        quote = 0;
                    }
                } else if c == b'"' || c == b'\'' {
                    quote = c;
                } else if c == b'{' || c == b';' || c == b'}' {
                    break;
                }
                j += 1;
            }
            if j >= b.len() {
                return;
            }
            let prelude = css[i..j].trim();
            if b[j] != b'{' {
                i = j + 1;
                continue;
            }
            // Block: to the matching `}`.
            let body_start = j + 1;
            let (mut depth, mut k, mut quote) = (1usize, body_start, 0u8);
            while k < b.len() {
                let c = b[k];
                if quote != 0 {
                    if c == b'\\' {
                        k += 1;
                    } else if c == quote {
                        quote = 0;
                    }
                } else {
                    match c {
                        b'"' | b'\'' => quote = c,
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                k += 1;
            }
            let body = &css[body_start..k.min(b.len())];
            i = (k + 1).min(b.len());
            let lower = prelude.to_ascii_lowercase();
            if let Some(query) = lower.strip_prefix("@media") {
                if media_matches(query) {
                    self.parse_block(body, certain);
                }
            } else if lower.starts_with("@supports")
                || lower.starts_with("@layer")
                || lower.starts_with("@container")
                || lower.starts_with("@scope")
            {
                self.parse_block(body, false);
            } else if lower.starts_with('@') {
                // @font-face, @keyframes, @page, …: nothing that hides text.
            } else {
                self.add_rule(prelude, body, certain);
            }
        }
    }

    fn add_rule(&mut self, prelude: &str, body: &str, certain: bool) {
        let mut selectors = Vec::new();
        let mut pseudo = false;
        for part in split_top(prelude, b',') {
            match parse_selector(part) {
                Some(Ok(s)) => selectors.push(s),
                Some(Err(())) => pseudo = true,
                None => return, // One invalid selector invalidates the rule.
            }
        }
        let decls = parse_declarations(body);
        if pseudo {
            let content = decls.iter().rev().find(|d| d.prop == Prop::Content);
            if content.is_some_and(|d| d.value.chars().filter(|c| c.is_alphanumeric()).count() >= 3) {
                self.generated_content += 1;
            }
        }
        if decls.is_empty() || selectors.is_empty() {
            return;
        }
        let block = self.blocks.len();
        self.blocks.push(decls);
        for selector in selectors {
            if self.rules.len() >= MAX_RULES {
                self.skipped_bytes += body.len();
                return;
            }
            let idx = self.rules.len();
            let last = selector.compounds.last().cloned().unwrap_or_default();
            if let Some(id) = &last.id {
                self.by_id.entry(id.clone()).or_default().push(idx);
            } else if let Some(class) = last.classes.first() {
                self.by_class.entry(class.clone()).or_default().push(idx);
            } else if let Some(tag) = &last.tag {
                self.by_tag.entry(tag.clone()).or_default().push(idx);
            } else {
                self.universal.push(idx);
            }
            self.rules.push(Rule { selector, order: idx as u32 + 1, block, certain });
        }
    }

    /// Adds the declarations of every rule that matches `els[0]` (with `els[1..]` its
    /// ancestors, nearest first) to `out`.
    pub(crate) fn apply(&self, els: &[&dyn Element], out: &mut Declared) {
        let Some(el) = els.first() else { return };
        if self.overloaded() {
            let all = self.overload.get_or_init(|| {
                let mut d = Declared::default();
                for rule in &self.rules {
                    for decl in &self.blocks[rule.block] {
                        d.add(decl, Origin::Sheet, rule.selector.specificity, rule.order, false);
                    }
                }
                d
            });
            for (prop, prio, value, _) in &all.values {
                out.add(&Decl { prop: *prop, value: value.clone(), important: prio.0 }, prio.1, prio.2, prio.3, false);
            }
            return;
        }
        let mut candidates: Vec<usize> = Vec::new();
        if let Some(id) = el.attr("id") {
            if let Some(v) = self.by_id.get(id) {
                candidates.extend(v);
            }
        }
        if let Some(classes) = el.attr("class") {
            for class in classes.split_ascii_whitespace().take(32) {
                if let Some(v) = self.by_class.get(class) {
                    candidates.extend(v);
                }
            }
        }
        if let Some(v) = self.by_tag.get(el.name()) {
            candidates.extend(v);
        }
        candidates.extend(&self.universal);
        candidates.sort_unstable();
        candidates.dedup();
        let mut spent = candidates.len();
        for idx in candidates {
            let rule = &self.rules[idx];
            let mut budget = MATCH_BUDGET;
            let last = rule.selector.compounds.len() - 1;
            let m = match_at(&rule.selector, last, els, 0, &mut budget);
            spent += MATCH_BUDGET - budget;
            if m == Tri::No {
                continue;
            }
            let certain = rule.certain && m == Tri::Yes;
            for d in &self.blocks[rule.block] {
                out.add(d, Origin::Sheet, rule.selector.specificity, rule.order, certain);
            }
        }
        self.spent.set(self.spent.get().saturating_add(spent));
    }
}

/// Evaluates a media query list against a desktop screen `VIEWPORT_PX` wide.
fn media_matches(query: &str) -> bool {
    let query = query.trim();
    if query.is_empty() {
        return true;
    }
    query.split(',').any(|q| {
        let mut q = q.trim();
        let negate = q.starts_with("not ");
        if negate {
            q = &q[4..];
        }
        q = q.strip_prefix("only ").unwrap_or(q);
        let mut ok = true;
        for part in q.split(" and ") {
            let part = part.trim();
            let v = if let Some(feature) = part.strip_prefix('(') {
                let feature = feature.trim_end_matches(')');
                let (name, value) = feature.split_once(':').map_or((feature.trim(), ""), |(n, v)| (n.trim(), v.trim()));
                let px = parse_length(value, 16.0);
                match name {
                    "max-width" | "max-device-width" => px.is_some_and(|p| VIEWPORT_PX <= p),
                    "min-width" | "min-device-width" => px.is_some_and(|p| VIEWPORT_PX >= p),
                    "width" | "device-width" => px.is_some_and(|p| (VIEWPORT_PX - p).abs() < 0.5),
                    "prefers-color-scheme" => value == "light",
                    "orientation" => value == "landscape",
                    "color" | "hover" | "pointer" => true,
                    "-webkit-min-device-pixel-ratio" | "min-resolution" | "min--moz-device-pixel-ratio" => false,
                    _ => false,
                }
            } else {
                matches!(part, "" | "all" | "screen")
            };
            ok &= v;
        }
        ok != negate
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(&'static str, Vec<(&'static str, &'static str)>);

    impl Element for E {
        fn name(&self) -> &str {
            self.0
        }
        fn attr(&self, name: &str) -> Option<&str> {
            self.1.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        }
    }

    #[test]
    fn colors() {
        type Channels = Option<(f32, f32, f32, f32)>;
        let cases: &[(&str, Channels)] = &[
            ("white", Some((255.0, 255.0, 255.0, 1.0))),
            ("#FFF", Some((255.0, 255.0, 255.0, 1.0))),
            ("#fff", Some((255.0, 255.0, 255.0, 1.0))),
            ("#fefefe", Some((254.0, 254.0, 254.0, 1.0))),
            ("#ffffff80", Some((255.0, 255.0, 255.0, 128.0 / 255.0))),
            ("rgb(255, 255, 255)", Some((255.0, 255.0, 255.0, 1.0))),
            ("rgb(100% 100% 100% / 0.5)", Some((255.0, 255.0, 255.0, 0.5))),
            ("rgba(0,0,0,0)", Some((0.0, 0.0, 0.0, 0.0))),
            ("hsl(0, 0%, 100%)", Some((255.0, 255.0, 255.0, 1.0))),
            ("hsl(120deg 100% 25%)", Some((0.0, 127.5, 0.0, 1.0))),
            ("transparent", Some((0.0, 0.0, 0.0, 0.0))),
            ("currentcolor", None),
            ("#ggg", None),
        ];
        for (input, want) in cases {
            let got = parse_color(input).map(|c| (c.r.round(), c.g.round(), c.b.round(), (c.a * 1000.0).round() / 1000.0));
            let want = want.map(|(r, g, b, a)| (r.round(), g.round(), b.round(), (a * 1000.0).round() / 1000.0));
            assert_eq!(got, want, "{input}");
        }
        assert!(contrast(Rgba::WHITE, Rgba::hex(0xFEFEFE)) < MIN_CONTRAST);
        assert!(contrast(Rgba::WHITE, Rgba::hex(0xCCCCCC)) > MIN_CONTRAST);
        assert!(NAMED_COLORS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn declarations_and_escapes() {
        let d = parse_declarations("DISPLAY: None !IMPORTANT; col\\6f r: red; /* x:y */ background: url(a.png) #FFF; font: 0/0 a");
        let props: Vec<(Prop, &str, bool)> = d.iter().map(|d| (d.prop, d.value.as_str(), d.important)).collect();
        assert_eq!(
            props,
            vec![
                (Prop::Display, "none", true),
                (Prop::Color, "red", false),
                (Prop::BgImage, "image", false),
                (Prop::BgColor, "#fff", false),
                (Prop::FontSize, "0", false),
                (Prop::LineHeight, "0", false),
            ]
        );
    }

    fn computed(style: &str) -> Computed {
        let mut d = Declared::default();
        for decl in parse_declarations(style) {
            d.add(&decl, Origin::Inline, 0, 0, true);
        }
        Computed::root().child(&d, false)
    }

    #[test]
    fn hiding_styles() {
        let hidden = [
            ("display:none", Reason::DisplayNone),
            ("visibility:hidden", Reason::Visibility),
            ("opacity:0", Reason::Opacity),
            ("opacity:0.01", Reason::Opacity),
            ("font-size:0", Reason::FontSize),
            ("font-size:1px", Reason::FontSize),
            ("font-size:0.5pt", Reason::FontSize),
            ("line-height:0;overflow:hidden", Reason::ZeroSize),
            ("width:0;height:0;overflow:hidden", Reason::ZeroSize),
            ("max-height:0", Reason::MaxHeight),
            ("position:absolute;clip:rect(0,0,0,0)", Reason::Clip),
            ("clip-path:inset(50%)", Reason::Clip),
            ("clip-path:circle(0)", Reason::Clip),
            ("position:absolute;left:-9999px", Reason::OffScreen),
            ("position:fixed;top:-5000px", Reason::OffScreen),
            ("text-indent:-9999px", Reason::TextIndent),
            ("transform:scale(0)", Reason::Transform),
            ("-webkit-transform:scaleY(0)", Reason::Transform),
            ("mso-hide:all", Reason::MsoHide),
            ("color:#fff", Reason::Color),
            ("color:#fefefe", Reason::Color),
            ("color:rgb(255,255,255)", Reason::Color),
            ("color:hsl(0,0%,99%)", Reason::Color),
            ("color:rgba(0,0,0,0)", Reason::Color),
            ("color:white;background:#ffffff", Reason::Color),
            ("color:#111;background-color:#000", Reason::Color),
            ("font:0/0 a", Reason::FontSize),
        ];
        for (style, reason) in hidden {
            assert_eq!(computed(style).text_hidden(), Some(reason), "{style}");
        }
        let shown = [
            "display:block",
            "opacity:0.9",
            "font-size:12px",
            "line-height:0",
            "width:0",
            "position:relative;left:-10px",
            "text-indent:-1em",
            "transform:scale(1.1)",
            "color:#ccc",
            "color:#fff;background:#000",
            "color:#fff;background:url(https://x/hero.jpg)",
            "color:#fff;background-image:linear-gradient(red,blue)",
        ];
        for style in shown {
            assert_eq!(computed(style).text_hidden(), None, "{style}");
        }
    }

    #[test]
    fn selectors_match() {
        let mut sheet = Stylesheet::default();
        sheet.add(
            "p.a, #b { display:none } div > span.c { color:red } td .d { visibility:hidden } [data-x=\"1\"] { opacity:0 } \
             li:first-child { display:none } a:hover { display:none } @media (max-width:600px) { .m { display:none } } \
             .e::before { content: 'Hello there' } bad[ { display:none }",
            None,
        );
        assert_eq!(sheet.generated_content, 1);
        let check = |els: &[&dyn Element]| {
            let mut d = Declared::default();
            sheet.apply(els, &mut d);
            Computed::root().child(&d, false).text_hidden()
        };
        let p = E("p", vec![("class", "x a")]);
        assert_eq!(check(&[&p]), Some(Reason::DisplayNone));
        let b = E("div", vec![("id", "b")]);
        assert_eq!(check(&[&b]), Some(Reason::DisplayNone));
        let span = E("span", vec![("class", "d")]);
        let td = E("td", vec![]);
        let tr = E("tr", vec![]);
        assert_eq!(check(&[&span, &tr, &td]), Some(Reason::Visibility));
        assert_eq!(check(&[&span, &tr]), None);
        let x = E("em", vec![("data-x", "1")]);
        assert_eq!(check(&[&x]), Some(Reason::Opacity));
        // Uncertain structural pseudo-class: hiding applies.
        let li = E("li", vec![]);
        assert_eq!(check(&[&li]), Some(Reason::DisplayNone));
        // Dynamic pseudo-class and a non-matching media query: never.
        let a = E("a", vec![]);
        assert_eq!(check(&[&a]), None);
        let m = E("div", vec![("class", "m")]);
        assert_eq!(check(&[&m]), None);
    }

    #[test]
    fn specificity_order_and_important() {
        let mut sheet = Stylesheet::default();
        sheet.add(".a { display:none } div { display:block } #i { display:block } .b { display:none !important } .c { display:none } .c { display:block }", None);
        let check = |attrs: Vec<(&'static str, &'static str)>, inline: &str| {
            let el = E("div", attrs);
            let mut d = Declared::default();
            sheet.apply(&[&el], &mut d);
            for decl in parse_declarations(inline) {
                d.add(&decl, Origin::Inline, 0, 0, true);
            }
            Computed::root().child(&d, false).text_hidden()
        };
        assert_eq!(check(vec![("class", "a")], ""), Some(Reason::DisplayNone), "class beats type");
        assert_eq!(check(vec![("class", "a"), ("id", "i")], ""), None, "id beats class");
        assert_eq!(check(vec![("class", "b"), ("id", "i")], "display:block"), Some(Reason::DisplayNone), "important wins");
        assert_eq!(check(vec![("class", "c")], ""), None, "later wins");
        assert_eq!(check(vec![("class", "a")], "display:block"), None, "inline beats sheet");
    }

    #[test]
    fn escaped_declarations_in_sheets() {
        let d = parse_declarations("disp\\6c ay: n\\6f ne");
        assert_eq!(d, vec![Decl { prop: Prop::Display, value: "none".to_owned(), important: false }]);
        let mut sheet = Stylesheet::default();
        sheet.add(".e { disp\\6c ay: n\\6f ne }", None);
        assert_eq!(sheet.rules.len(), 1);
    }

    #[test]
    fn media_queries() {
        for (q, want) in [
            ("", true),
            ("screen", true),
            ("print", false),
            ("only screen and (max-width: 600px)", false),
            ("screen and (min-width: 480px)", true),
            ("(prefers-color-scheme: dark)", false),
            ("not print", true),
            ("print, screen", true),
        ] {
            assert_eq!(media_matches(q), want, "{q}");
        }
    }
}
