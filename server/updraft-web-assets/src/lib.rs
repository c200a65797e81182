//! The web app's bundle, embedded: `index.html`, the JS glue and wasm that wasm-bindgen made
//! from `web/`, and the stylesheet, each gzip-compressed at build time. The API server serves
//! them (`updraft-api::web`); nothing here knows HTTP.

/// One file of the bundle.
#[derive(Debug)]
pub struct Asset {
    /// The URL path it is served at (`/index.html`, `/assets/updraft-<hash>.wasm`, …).
    pub path: &'static str,
    pub content_type: &'static str,
    /// The content, gzip-compressed.
    pub gzip: &'static [u8],
    /// The uncompressed length.
    pub len: usize,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file served at `path`, if the bundle has one.
pub fn find(path: &str) -> Option<&'static Asset> {
    FILES.iter().find(|asset| asset.path == path)
}

/// The app's entry page (served for every client-side route).
pub fn index() -> &'static Asset {
    // The build script always writes index.html first.
    &FILES[0]
}

/// The uncompressed content (for the rare client that does not accept gzip).
pub fn decompress(asset: &Asset) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(asset.len);
    flate2::read::GzDecoder::new(asset.gzip).read_to_end(&mut out)?;
    Ok(out)
}
