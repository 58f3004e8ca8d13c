//! Thumbnails of uploaded images, made once at upload with the `image`
//! crate.

use crate::{Dimensions, Thumbnail};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

/// Largest decoded image (its pixel buffer) a thumbnail is made of: larger
/// images get none, and their original serves as their thumbnail. With
/// [`crate::local::THUMBNAIL_WORKERS`] decodes at a time this bounds the
/// memory thumbnails may take.
pub const MAX_DECODE_BYTES: u64 = 128 * 1024 * 1024;

/// Longest side of an image that is decoded at all.
const MAX_SIDE: u32 = 16_384;

/// JPEG quality of JPEG thumbnails.
const JPEG_QUALITY: u8 = 80;

/// The image formats thumbnails are made of, by their first bytes.
pub(crate) fn sniff(head: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(head).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => {
            Some(f)
        }
        _ => None,
    }
}

/// What [`make`] found and made.
pub(crate) struct Made {
    /// The image's dimensions, after its EXIF orientation.
    pub image: Dimensions,
    /// `None`: the image already fits the box and is its own thumbnail.
    pub thumbnail: Option<Thumbnail>,
}

/// Decodes the image at `src` and, if it does not fit in `max_w` × `max_h`,
/// writes a thumbnail that does (aspect ratio kept, longest side on the box)
/// to `out`, fsynced: JPEG for a JPEG, PNG for anything else (which keeps
/// transparency; an animation gives its first frame).
pub(crate) fn make(
    src: &Path,
    format: ImageFormat,
    max_w: u32,
    max_h: u32,
    out: &Path,
) -> image::ImageResult<Made> {
    let mut reader = ImageReader::with_format(BufReader::new(File::open(src)?), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(image::ImageError::Limits(
            image::error::LimitError::from_kind(image::error::LimitErrorKind::InsufficientMemory),
        ));
    }
    let orientation = decoder.orientation()?;
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    let image = Dimensions {
        width: img.width(),
        height: img.height(),
    };
    if image.width <= max_w && image.height <= max_h {
        return Ok(Made {
            image,
            thumbnail: None,
        });
    }
    let thumb = img.thumbnail(max_w, max_h);
    drop(img);
    let mut w = BufWriter::new(File::create(out)?);
    let content_type = if format == ImageFormat::Jpeg {
        JpegEncoder::new_with_quality(&mut w, JPEG_QUALITY).encode_image(&thumb.to_rgb8())?;
        "image/jpeg"
    } else {
        thumb.write_to(&mut w, ImageFormat::Png)?;
        "image/png"
    };
    w.flush()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Made {
        image,
        thumbnail: Some(Thumbnail {
            content_type: content_type.to_string(),
            size: file.metadata()?.len(),
            dimensions: Dimensions {
                width: thumb.width(),
                height: thumb.height(),
            },
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn dims(path: &Path) -> (u32, u32) {
        ImageReader::open(path)
            .unwrap()
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap()
    }

    #[test]
    fn large_images_shrink_into_the_box_and_keep_their_format() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.jpg");
        RgbImage::from_fn(640, 480, |x, y| Rgb([x as u8, y as u8, 7]))
            .save_with_format(&src, ImageFormat::Jpeg)
            .unwrap();
        let out = dir.path().join("a.thumb");
        let head = std::fs::read(&src).unwrap();
        assert_eq!(sniff(&head[..16]), Some(ImageFormat::Jpeg));
        let made = make(&src, ImageFormat::Jpeg, 170, 170, &out).unwrap();
        assert_eq!(
            made.image,
            Dimensions {
                width: 640,
                height: 480
            }
        );
        let t = made.thumbnail.unwrap();
        assert_eq!(t.content_type, "image/jpeg");
        assert_eq!(
            t.dimensions,
            Dimensions {
                width: 170,
                height: 128
            }
        );
        assert_eq!(dims(&out), (170, 128));
        assert_eq!(t.size, std::fs::metadata(&out).unwrap().len());
    }

    #[test]
    fn small_images_are_their_own_thumbnail() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.png");
        RgbaImage::from_pixel(100, 40, Rgba([1, 2, 3, 4]))
            .save_with_format(&src, ImageFormat::Png)
            .unwrap();
        let out = dir.path().join("a.thumb");
        let made = make(&src, ImageFormat::Png, 170, 170, &out).unwrap();
        assert_eq!(
            made.image,
            Dimensions {
                width: 100,
                height: 40
            }
        );
        assert!(made.thumbnail.is_none());
        assert!(!out.exists());
    }

    #[test]
    fn non_images_and_broken_images_are_refused() {
        assert_eq!(sniff(b"hello world, not an image"), None);
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("broken.png");
        std::fs::write(&src, b"\x89PNG\r\n\x1a\n and then nothing useful").unwrap();
        assert!(make(&src, ImageFormat::Png, 170, 170, &dir.path().join("t")).is_err());
    }
}
