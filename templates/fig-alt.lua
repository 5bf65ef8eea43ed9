-- Quarto writes an image's alt text as `fig-alt`; plain pandoc would use the caption instead.
-- This filter makes `fig-alt` the image's `alt` attribute, so the HTML <img> gets a real alt.
function Image(img)
  local alt = img.attributes["fig-alt"]
  if alt ~= nil and alt ~= "" then
    img.attributes["fig-alt"] = nil
    img.attributes["alt"] = alt
  end
  return img
end
