// EagleRec's movie site: plain JavaScript over the recommender's JSON API (same origin, nothing from the network).
// Pages are hash routes: #/ (home), #/movie/<id>, #/user/<id>, #/search/<words>.
"use strict";

const USER_KEY = "eaglerec.user";
// Any id with no ratings: the recommender answers it with its cold-start list.
const ANONYMOUS_USER = 2000000000;
const GENRE_COLOURS = {
  "Action": "#b91c1c", "Adventure": "#c2410c", "Animation": "#0e7490", "Children": "#65a30d", "Comedy": "#ca8a04",
  "Crime": "#374151", "Documentary": "#475569", "Drama": "#7c3aed", "Fantasy": "#9333ea", "Film-Noir": "#111827",
  "Horror": "#7f1d1d", "IMAX": "#1e40af", "Musical": "#db2777", "Mystery": "#4338ca", "Romance": "#e11d48",
  "Sci-Fi": "#0369a1", "Thriller": "#57534e", "War": "#3f6212", "Western": "#92400e",
};

const page = document.getElementById("page");
const notice = document.getElementById("notice");
// Pages load asynchronously: a slow page must not overwrite one the user went to after it. Each render is a new
// view; a page draws itself only if its view is still the current one.
let currentView = 0;

function show(view, html) {
  if (view === currentView) page.innerHTML = html;
}

function currentUser() {
  const stored = Number(localStorage.getItem(USER_KEY));
  return Number.isInteger(stored) && stored > 0 ? stored : null;
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function say(message, isError = false) {
  notice.textContent = message;
  notice.classList.toggle("error", isError);
  notice.hidden = !message;
}

async function api(path, body) {
  const options = body === undefined ? {} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const payload = await response.json();
  if (!response.ok) {
    const error = new Error(payload.error || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return payload;
}

// A poster drawn, not downloaded: the primary genre's colour, the title in a few lines, the year.
function poster(movie) {
  const genre = (movie.genres || [])[0] || "";
  const colour = GENRE_COLOURS[genre] || "#334155";
  const title = movie.title.replace(/\s*\(\d{4}\)\s*$/, "");
  const words = title.split(/\s+/);
  const lines = [];
  for (const word of words) {
    const last = lines[lines.length - 1];
    if (last !== undefined && (last + " " + word).length <= 14) lines[lines.length - 1] = last + " " + word;
    else lines.push(word.length > 16 ? word.slice(0, 15) + "…" : word);
  }
  const shown = lines.slice(0, 5);
  if (lines.length > 5) shown[4] = shown[4].slice(0, 13) + "…";
  const text = shown.map((line, i) =>
    `<text x="12" y="${40 + i * 22}" font-size="17" font-weight="700" fill="#fff">${escapeHtml(line)}</text>`).join("");
  const label = `Poster: ${title}${movie.release_year ? ", " + movie.release_year : ""}`;
  return `<svg viewBox="0 0 160 220" role="img" aria-label="${escapeHtml(label)}">
    <defs><linearGradient id="g${movie.movie_id}" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="${colour}"/><stop offset="1" stop-color="#0f172a"/></linearGradient></defs>
    <rect width="160" height="220" fill="url(#g${movie.movie_id})"/>
    ${text}
    <text x="12" y="196" font-size="14" fill="#e2e8f0">${escapeHtml(movie.release_year ?? "")}</text>
    <text x="148" y="196" font-size="11" fill="#e2e8f0" text-anchor="end">${escapeHtml(genre)}</text>
  </svg>`;
}

function card(movie) {
  const user = currentUser();
  const title = movie.title.replace(/\s*\(\d{4}\)\s*$/, "");
  const stars = user === null ? "" : `<div class="stars" role="group" aria-label="Rate ${escapeHtml(title)}">` +
    [1, 2, 3, 4, 5].map((n) => `<button type="button" data-rate="${n}" data-movie="${movie.movie_id}"
      aria-label="Rate ${escapeHtml(title)} ${n} star${n > 1 ? "s" : ""}">★${n}</button>`).join("") + "</div>";
  return `<article class="card" data-movie-id="${movie.movie_id}">
    <a href="#/movie/${movie.movie_id}" tabindex="-1" aria-hidden="true">${poster(movie)}</a>
    <div class="body">
      <a class="title" href="#/movie/${movie.movie_id}">${escapeHtml(title)}</a>
      <span class="meta">${escapeHtml(movie.release_year ?? "")} · ${escapeHtml((movie.genres || []).slice(0, 2).join(", "))}</span>
      ${movie.reason ? `<span class="reason">${escapeHtml(movie.reason)}</span>` : ""}
      ${stars}
    </div>
  </article>`;
}

function row(movies, label) {
  return `<div class="row" role="list" aria-label="${escapeHtml(label)}">${movies.map(card).join("")}</div>`;
}

async function recommendationsSection(user) {
  const answer = await api("/recommend", {user_id: user ?? ANONYMOUS_USER, k: 12});
  const heading = answer.cold_start
    ? (user === null ? "Popular picks — choose a user for personal recommendations" : "Popular picks to start with")
    : "Recommended for you";
  const variant = answer.cold_start ? "cold start" : `variant ${answer.variant} · ${answer.ranker}`;
  return `<section id="recommendations" aria-labelledby="recommendations-title">
    <h2 id="recommendations-title">${escapeHtml(heading)}</h2>
    <p class="sub">${user === null ? "" : `User ${user} · `}${escapeHtml(variant)}</p>
    ${row(answer.items, heading)}</section>`;
}

async function showHome(view) {
  const user = currentUser();
  const [recommendations, genres] = await Promise.all([recommendationsSection(user), api("/genres")]);
  const top = genres.genres.filter((g) => g.genre !== "(no genres listed)").slice(0, 8);
  const rows = await Promise.all(top.map((g) => api(`/genres/${encodeURIComponent(g.genre)}?sort=popularity&k=12`)));
  show(view, `<h1>${user === null ? "Discover movies" : `Welcome back, user ${user}`}</h1>` + recommendations +
    rows.map((r) => `<section><h2>Popular in ${escapeHtml(r.genre)}</h2>${row(r.items, "Popular in " + r.genre)}</section>`).join(""));
}

async function showMovie(view, movieId) {
  const [movie, similar] = await Promise.all([api(`/movies/${movieId}`), api("/similar", {movie_id: movieId, k: 12})]);
  const links = [
    movie.imdb_id ? `<a href="https://www.imdb.com/title/tt${encodeURIComponent(movie.imdb_id)}/" rel="noopener">IMDb</a>` : "",
    movie.tmdb_id ? `<a href="https://www.themoviedb.org/movie/${movie.tmdb_id}" rel="noopener">TMDB</a>` : "",
  ].filter(Boolean).join(" · ");
  const average = movie.average_rating == null ? "no ratings yet" : `${movie.average_rating.toFixed(2)} / 5`;
  show(view, `<div class="details">${poster(movie)}<div>
      <h1>${escapeHtml(movie.title)}</h1>
      <p>${(movie.genres || []).map((g) => `<span class="tag">${escapeHtml(g)}</span>`).join("")}</p>
      <dl class="facts">
        <dt>Released</dt><dd>${escapeHtml(movie.release_year ?? "unknown")}</dd>
        <dt>Average rating</dt><dd>${average}</dd>
        <dt>Ratings</dt><dd>${movie.rating_count}</dd>
        <dt>Elsewhere</dt><dd>${links || "—"}</dd>
      </dl>
      ${currentUser() === null ? "" : `<div class="stars" style="max-width:18rem" role="group" aria-label="Rate this movie">` +
        [1, 2, 3, 4, 5].map((n) => `<button type="button" data-rate="${n}" data-movie="${movie.movie_id}"
          aria-label="Rate ${escapeHtml(movie.title)} ${n} star${n > 1 ? "s" : ""}">★${n}</button>`).join("") + "</div>"}
    </div></div>
    <section><h2>Similar movies</h2><p class="sub">${similar.method === "genre" ? "by shared genres" : "proposed by the retriever"}</p>
    ${row(similar.items, "Similar movies")}</section>`);
}

async function showUser(view, userId) {
  // A user with no ratings is unknown to /users (404) but not to /recommend: its cold-start picks are the way in.
  const [user, recommendations] = await Promise.all([
    api(`/users/${userId}`).catch((error) => { if (error.status === 404) return null; throw error; }),
    recommendationsSection(userId)]);
  const become = currentUser() === userId ? "" :
    `<button type="button" id="become" data-user="${userId}">Browse as user ${userId}</button>`;
  if (user === null) {
    show(view, `<h1>User ${userId}</h1>
      <p class="sub">No ratings yet: rate a few movies and the recommendations follow.</p>${become}${recommendations}`);
    return;
  }
  const history = user.history.slice(0, 30).map((r) => `<li><a href="#/movie/${r.movie_id}">${escapeHtml(r.title)}</a>
    — ${"★".repeat(Math.round(r.rating))} ${r.rating}</li>`).join("");
  const average = user.average_rating == null ? "—" : user.average_rating.toFixed(2);
  show(view, `<h1>User ${user.user_id}</h1>
    <dl class="facts">
      <dt>Ratings</dt><dd>${user.rating_count}</dd>
      <dt>Average</dt><dd>${average} (highest ${user.highest_rating ?? "—"}, lowest ${user.lowest_rating ?? "—"})</dd>
      <dt>Favourite genres</dt><dd>${user.favourite_genres.map((g) => `<span class="tag">${escapeHtml(g)}</span>`).join("") || "—"}</dd>
      <dt>A/B variant</dt><dd><span class="badge">${escapeHtml(user.variant)}</span></dd>
    </dl>
    ${become}
    ${recommendations}
    <section><h2>Recently rated</h2><ul class="history">${history || "<li>No ratings yet</li>"}</ul></section>`);
}

async function showSearch(view, words) {
  const result = await api(`/search?q=${encodeURIComponent(words)}&k=48`);
  show(view, `<h1>Search: “${escapeHtml(words)}”</h1>
    <p class="sub">${result.total} movie${result.total === 1 ? "" : "s"} found${result.total > 48 ? ", the 48 most liked shown" : ""}</p>
    <div class="grid" role="list" aria-label="Search results">${result.items.map(card).join("")}</div>`);
}

async function route() {
  const [, kind, raw] = location.hash.match(/^#\/(movie|user|search)\/(.+)$/) || [];
  const value = raw === undefined ? undefined : decodeURIComponent(raw);
  say("");
  const view = ++currentView;
  try {
    if (kind === "movie" && /^\d+$/.test(value)) await showMovie(view, Number(value));
    else if (kind === "user" && /^\d+$/.test(value)) await showUser(view, Number(value));
    else if (kind === "search" && value) await showSearch(view, value);
    else await showHome(view);
    if (view === currentView) {
      page.focus({preventScroll: true});
      window.scrollTo(0, 0);
    }
  } catch (error) {
    show(view, `<h1>Not available</h1><p>${escapeHtml(error.message)}</p><p><a href="#/">Back home</a></p>`);
  }
}

async function rate(button) {
  const user = currentUser();
  const movieId = Number(button.dataset.movie);
  const stars = Number(button.dataset.rate);
  try {
    await api("/events", {user_id: user, movie_id: movieId, rating: stars});
    button.closest(".stars").querySelectorAll("button").forEach((b) => b.classList.toggle("done", b === button));
    say(`Rated ${stars} star${stars > 1 ? "s" : ""}: updating your recommendations…`);
    if (location.hash === `#/user/${user}`) {
      await showUser(++currentView, user);  // the rating count and "Recently rated" include it too
    } else {
      const section = document.getElementById("recommendations");
      if (section) section.outerHTML = await recommendationsSection(user);
    }
    say(`Rated ${stars} star${stars > 1 ? "s" : ""}: recommendations updated.`);
  } catch (error) {
    say(`Could not rate: ${error.message}`, true);
  }
}

document.addEventListener("click", (event) => {
  const rateButton = event.target.closest("button[data-rate]");
  if (rateButton) rate(rateButton);
  const become = event.target.closest("#become");
  if (become) {
    localStorage.setItem(USER_KEY, become.dataset.user);
    document.getElementById("user-input").value = become.dataset.user;
    route();
  }
});

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const words = document.getElementById("search-input").value.trim();
  if (words) location.hash = `#/search/${encodeURIComponent(words)}`;
});

document.getElementById("user-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = Number(document.getElementById("user-input").value);
  if (!Number.isInteger(value) || value < 1) {
    say("A user id is a whole number from 1.", true);
    return;
  }
  localStorage.setItem(USER_KEY, String(value));
  navigate(`#/user/${value}`);
});

// Go to a page; render again when already there (the hash does not change, so no hashchange event).
function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

document.getElementById("user-clear").addEventListener("click", () => {
  localStorage.removeItem(USER_KEY);
  document.getElementById("user-input").value = "";
  navigate("#/");
});

window.addEventListener("hashchange", route);
document.getElementById("user-input").value = currentUser() ?? "";
route();
