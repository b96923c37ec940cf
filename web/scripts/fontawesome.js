/* Replaces the theme's Font Awesome script (1.5 MB, SVG icons drawn by JavaScript): the
   theme's stylesheet already draws the same icons with the Font Awesome web font, so pages
   do not need the script. */
